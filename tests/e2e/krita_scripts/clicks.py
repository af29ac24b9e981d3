"""Real input for the Krita e2e scripts (runs inside Krita): the pointer and keys go through the
X server with xdotool, as an artist's do, and screenshots show what the artist would see.

Qt handles the synthetic X events exactly like a person's: a button's ``clicked`` signal fires
with its own arguments, a spin box is edited with the keyboard and finishes on Tab.
"""
import os
import subprocess
import time

from qt_compat import QApplication, QCheckBox, QScrollArea

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
        point.setX(rect.left() + min(30, rect.width() // 2))  # on its label, which toggles it as the box does
    point = widget.mapToGlobal(point)
    return point.x(), point.y()


def click(widget, settle_s: float = 0.4) -> None:
    """A left click on the widget, through the X server."""
    assert widget.isVisible(), f"{widget.objectName() or type(widget).__name__} is not on screen"
    window = widget.window()
    if not window.isActiveWindow():  # what a window manager does on the first click (Xvfb runs none)
        window.activateWindow()
        settle(0.5)
    x, y = target(widget)
    _not_a_double_click(x, y)
    xdotool("mousemove", "--sync", str(x), str(y), "click", "1")
    _last_click[:] = [x, y, time.monotonic()]
    settle(settle_s)


_last_click: list = [None, None, 0.0]


def _not_a_double_click(x: int, y: int) -> None:
    """Two clicks on one spot within the double-click interval are one double click (a check box
    then does not toggle twice): wait as a person's second, separate click would."""
    if _last_click[:2] == [x, y]:
        wait_s = QApplication.doubleClickInterval() / 1000 + 0.1 - (time.monotonic() - _last_click[2])
        if wait_s > 0:
            settle(wait_s)


def choose(combo, index: int) -> None:
    """Open a drop-down list with a click and click its entry ``index``, as an artist picks from a list."""
    view = combo.view()
    click(combo, settle_s=0.3)
    deadline = time.monotonic() + 10
    while not view.isVisible() and time.monotonic() < deadline:  # a busy machine shows it late
        settle(0.1)
    assert view.isVisible(), "the list did not open"
    settle(0.5)  # the list slides open
    rect = view.visualRect(view.model().index(index, combo.modelColumn()))
    point = view.viewport().mapToGlobal(rect.center())
    xdotool("mousemove", "--sync", str(point.x()), str(point.y()))
    settle(0.2)
    xdotool("click", "1")
    settle(0.4)


def key(*keys: str, settle_s: float = 0.3) -> None:
    """Key presses (xdotool names: Return, Tab, Down, ctrl+a) to the focused widget."""
    xdotool("key", "--delay", "60", *keys)
    settle(settle_s)


def give_keyboard_to(window) -> None:
    """What a window manager does on a click: the X keyboard focus to the clicked window. Xvfb runs
    none, and a drop-down list that closed (a window of its own) can leave the focus nowhere, so the
    keys typed next would be lost. No ``--sync``, which would wait (the GUI frozen meanwhile) until
    the focus is on exactly that window rather than one of its children."""
    xdotool("windowfocus", str(int(window.winId())))
    settle(0.1)


def type_into(widget, text: str) -> None:
    """Click a text or number field, replace its content by typing, and leave it with Tab."""
    click(widget)
    give_keyboard_to(widget.window())
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
