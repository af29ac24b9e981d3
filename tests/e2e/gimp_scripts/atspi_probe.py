"""Print the widgets of one window of a running GTK program as GTK's accessibility tree shows them.

Runs in the GIMP chroot's Python (python3-gi, gir1.2-atspi-2.0) on the same session bus as GIMP.
For each window title it reads on a line of its input, it prints one line: a JSON list of the
widgets on screen in the window of that title (quick enough to watch a drag's progress): role, name (a label's or button's text), text (an entry's), value (a spin button's or a
progress bar's), states, and the screen rectangle [x, y, width, height] where a person would click.
"""
import json
import sys
import warnings

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi  # noqa: E402

warnings.simplefilter("ignore", DeprecationWarning)
STATES = ("showing", "sensitive", "checked", "expanded", "focused", "editable")


def describe(node):
    """One widget as a dict (None when it is not on screen)."""
    states = node.get_state_set()
    shown = [s for s in STATES if states.contains(getattr(Atspi.StateType, s.upper()))]
    if "showing" not in shown:
        return None
    item = {"role": node.get_role_name(), "name": node.get_name() or "", "states": shown}
    # the interfaces' functions called through their classes: Accessible has methods of the same names
    if node.get_component_iface() is not None:
        box = Atspi.Component.get_extents(node, Atspi.CoordType.SCREEN)
        item["rect"] = [box.x, box.y, box.width, box.height]
    if node.get_text_iface() is not None:
        item["text"] = Atspi.Text.get_text(node, 0, Atspi.Text.get_character_count(node))
    if node.get_value_iface() is not None:
        item["value"] = Atspi.Value.get_current_value(node)
    return item


def walk(node, out):
    item = describe(node)
    if item is None:
        return
    out.append(item)
    for i in range(node.get_child_count()):
        child = node.get_child_at_index(i)
        if child is not None:
            walk(child, out)


def widgets_of(title):
    desktop = Atspi.get_desktop(0)
    widgets = []
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        for j in range(app.get_child_count() if app is not None else 0):
            window = app.get_child_at_index(j)
            if window is not None and window.get_name() == title:
                walk(window, widgets)
    return widgets


for line in sys.stdin:
    print(json.dumps(widgets_of(line.rstrip("\n"))), flush=True)
