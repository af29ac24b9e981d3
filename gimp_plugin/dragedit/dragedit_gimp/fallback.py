"""A stand-in plug-in for a broken install: the menu entry stays, and running it says how to fix it.

Imports nothing but gi, so it loads when the vendored packages (pyzmq, msgpack, dragedit_protocol
in _vendor/) are missing or built for another Python.
"""
from __future__ import annotations

from gi.repository import GLib, Gimp

from .registration import plugin_class


def broken_install_plugin(error: ImportError) -> type:
    """A Gimp.PlugIn class whose procedure only reports ``error`` with the fix."""
    text = (f"DragEdit's plug-in is not installed completely ({error}). "
            "Run 'python3 install.py' in the DragEdit folder again, then restart GIMP.")

    def run(procedure, run_mode, image, drawables, config, data):
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(text))

    return plugin_class(run, "DragEdit (not installed completely)", text)
