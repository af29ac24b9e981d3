"""What GIMP is told: the plug-in class, its procedure's menu place, image types, documentation
and arguments.

Imports only gi, so the stand-in for a broken install (fallback.py) declares the same procedure.
Arguments: method, params (a JSON object of parameter values), path-name, seed (-1 = random),
prompt, soft-edge (px). GIMP remembers them after a successful interactive run; the aux argument
``settings`` also keeps every method's values (a ``ParamStore`` as JSON) for the dialog.
"""
from __future__ import annotations

from typing import Callable

from gi.repository import GObject, Gimp

from . import MENU_LABEL, MENU_PATH, PROCEDURE

RANDOM_SEED = -1
MAX_SEED = 2**31 - 1  # GIMP's int arguments are 32-bit
SOFT_EDGE_PX = 8  # the default "Soft edge", the same as Krita's (dragedit_protocol.editor.drag.SOFT_EDGE_PX)
MAX_SOFT_EDGE_PX = 200
BLURB = "Drag image content from handle points to target points"
HELP = ("Each stroke of the path 'Drag points' (or of the selected path) goes from a handle (its first "
        "point) to a target (its last point). The selection limits what may change (none: the area around "
        "the points), and the edit fades into the untouched image over its soft edge. The DragEdit daemon "
        "edits the layer with a diffusion model; the result is added as a new layer above it.")


def plugin_class(run: Callable, blurb: str = BLURB, help_text: str = HELP) -> type:
    """A Gimp.PlugIn subclass declaring the one DragEdit procedure, which ``run`` runs."""

    class DragEditPlugIn(Gimp.PlugIn):
        def do_query_procedures(self) -> list[str]:
            return [PROCEDURE]

        def do_set_i18n(self, name: str) -> bool:
            return False

        def do_create_procedure(self, name: str) -> Gimp.Procedure:
            procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
            declare_procedure(procedure, blurb, help_text)
            return procedure

    return DragEditPlugIn


def declare_procedure(procedure: Gimp.Procedure, blurb: str, help_text: str) -> None:
    """Menu entry (Filters > Distorts > Drag Edit...), image types, documentation and arguments."""
    procedure.set_image_types("*")  # grayscale and indexed images get a clear message, not a grey menu
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
    procedure.set_menu_label(MENU_LABEL)
    procedure.add_menu_path(MENU_PATH)
    procedure.set_documentation(blurb, help_text, procedure.get_name())
    procedure.set_attribution("DragEdit", "DragEdit", "2025")
    add_arguments(procedure)


def add_arguments(procedure: Gimp.Procedure) -> None:
    """Declare the procedure's arguments (their order is the PDB signature after image and drawables)."""
    flags = GObject.ParamFlags.READWRITE
    procedure.add_string_argument("method", "Method", "Drag method name as the daemon publishes it "
                                  "(empty: the daemon's first method)", "", flags)
    procedure.add_string_argument("params", "Parameters", "Method parameters as a JSON object "
                                  "(missing ones take the published defaults)", "{}", flags)
    procedure.add_string_argument("path-name", "Path", "Path holding the drag strokes (empty: 'Drag points', "
                                  "else the selected path)", "", flags)
    procedure.add_int_argument("seed", "Seed", "Random seed (-1: a new one each drag)", RANDOM_SEED, MAX_SEED,
                               RANDOM_SEED, flags)
    procedure.add_string_argument("prompt", "Prompt", "Optional text describing the image", "", flags)
    procedure.add_int_argument("soft-edge", "Soft edge", "Width in pixels over which the edit fades into the "
                               "untouched image at the selection's edge (0: a hard edge)", 0, MAX_SOFT_EDGE_PX,
                               SOFT_EDGE_PX, flags)
    procedure.add_string_argument("model", "Model", "The diffusion model: empty for the daemon's own, 'toy' for "
                                  "the demo model, or a .safetensors file, a diffusers folder or a hub id", "", flags)
    procedure.add_string_aux_argument("settings", "Settings", "Every method's last values (JSON)", "", flags)
