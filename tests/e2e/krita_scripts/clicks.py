"""Real input for the Krita e2e scripts (runs inside Krita): the pointer and keys go through the
X server with xdotool, as an artist's do, and screenshots show what the artist would see.

Qt handles the synthetic X events exactly like a person's: a button's ``clicked`` signal fires
with its own arguments, a spin box is edited with the keyboard and finishes on Tab.
"""
import os
import subprocess
import time

from PyQt5.QtWidgets import QApplication, QCheckBox, QScrollArea

SHOTS = os.environ.get("DRAGEDIT_E2E_SHOTS", "")
_shot_number = [0]


def settle(seconds: float = 0.3) -> None:
    """Let Qt handle the events the X server delivered (and repaint) for a moment."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=20)


def _scroll_into_view(widget) -> None:
    """Scroll the docker's scroll area so the widget is on screen, as an artist would."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QScrollArea):
            parent.ensureWidgetVisible(widget, 40, 40)
        parent = parent.parentWidget()


def target(widget) -> tuple:
    """Where an artist clicks a widget, in screen pixels: its middle, or a check box's box."""
    _scroll_into_view(widget)
    settle(0.1)
    rect = widget.rect()
    point = rect.center()
    if isinstance(widget, QCheckBox):
        point.setX(rect.left() + min(10, rect.width() // 2))
    point = widget.mapToGlobal(point)
    return point.x(), point.y()


def click(widget, settle_s: float = 0.4) -> None:
    """A left click on the widget, through the X server."""
    assert widget.isVisible(), f"{widget.objectName() or type(widget).__name__} is not on screen"
    x, y = target(widget)
    xdotool("mousemove", "--sync", str(x), str(y), "click", "1")
    settle(settle_s)


def key(*keys: str, settle_s: float = 0.3) -> None:
    """Key presses (xdotool names: Return, Tab, Down, ctrl+a) to the focused widget."""
    xdotool("key", "--delay", "60", *keys)
    settle(settle_s)


def type_into(widget, text: str) -> None:
    """Click a text or number field, replace its content by typing, and leave it with Tab."""
    click(widget)
    key("ctrl+a")
    xdotool("type", "--delay", "40", text)
    key("Tab")


def screenshot(name: str) -> str:
    """Save the whole X screen as NN-name.png in $DRAGEDIT_E2E_SHOTS; returns the path ('' when unset).

    Qt reads the X server's root window, so the picture is what the screen shows (other windows,
    menus and all), with no screenshot tool needed where Krita runs.
    """
    if not SHOTS:
        return ""
    settle(0.2)
    _shot_number[0] += 1
    path = os.path.join(SHOTS, "%02d-%s.png" % (_shot_number[0], name))
    assert QApplication.primaryScreen().grabWindow(0).save(path, "PNG"), f"could not save {path}"
    return path
