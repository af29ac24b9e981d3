"""The DragEdit procedure's run: the dialog (interactive) or one drag with the arguments (scripts)."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from gi.repository import GLib, Gimp

from dragedit_protocol.editor.errors import UserError

from .registration import plugin_class
from .run import DragCancelled, make_session, run_noninteractive
from .settings import read_args

VENDOR_DIR = Path(__file__).resolve().parents[1] / "_vendor"


def error_values(procedure: Gimp.Procedure, text: str) -> Gimp.ValueArray:
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(text))


def run_procedure(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list,
                  config: Gimp.ProcedureConfig, data) -> Gimp.ValueArray:
    """Interactive: the dialog. Non-interactive and with last values: one drag with the arguments."""
    session = None
    try:
        session = make_session(VENDOR_DIR)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            from .dialog import run_dialog  # Gtk is loaded only when there is a display

            added = run_dialog(procedure, config, image, session)
            status = Gimp.PDBStatusType.SUCCESS if added else Gimp.PDBStatusType.CANCEL
        else:
            run_noninteractive(session, image, list(drawables), read_args(config))
            status = Gimp.PDBStatusType.SUCCESS
    except UserError as err:
        return error_values(procedure, str(err))
    except DragCancelled:
        status = Gimp.PDBStatusType.CANCEL
    except Exception as exc:  # never a traceback dialog: a sentence, and the details on stderr
        traceback.print_exc(file=sys.stderr)
        return error_values(procedure, f"Drag Edit failed unexpectedly ({type(exc).__name__}: {exc}). "
                                       "Please report it with the details GIMP printed on its error output.")
    finally:
        if session is not None:
            session.close()
    return procedure.new_return_values(status, GLib.Error())


DragEditPlugIn = plugin_class(run_procedure)
