"""The Krita extension: the plug-in's actions and the timer that drives the controller."""
from __future__ import annotations

from pathlib import Path

from krita import Extension, Krita

from .controller import DragController
from .qt import QTimer

VENDOR_DIR = Path(__file__).resolve().parent / "_vendor"
TICK_MS = 100
MENU = "tools/scripts/dragedit"
# (id, text): ids stay stable, scripts and tests trigger them with Krita.instance().action(id).trigger()
ACTIONS = (
    ("dragedit_drag", "Drag Edit: drag"),
    ("dragedit_cancel", "Drag Edit: cancel"),
    ("dragedit_add_pair", "Drag Edit: add point pair"),
    ("dragedit_clear_pairs", "Drag Edit: clear point pairs"),
)

_controller: DragController | None = None


def shared_controller() -> DragController:
    """The one controller of this Krita instance (shared by every window's docker and the actions)."""
    global _controller
    if _controller is None:
        _controller = DragController(Krita.instance(), VENDOR_DIR)
    return _controller


class DragEditExtension(Extension):
    """Creates the actions and ticks the controller from a QTimer (never blocking the GUI thread)."""

    def __init__(self, parent: object):
        super().__init__(parent)
        self._timer: QTimer | None = None

    def setup(self) -> None:
        controller = shared_controller()
        self._timer = QTimer(self)
        self._timer.timeout.connect(controller.tick)
        self._timer.start(TICK_MS)
        Krita.instance().notifier().applicationClosing.connect(controller.close)

    def createActions(self, window: object) -> None:
        controller = shared_controller()
        slots = {
            "dragedit_drag": controller.drag,
            "dragedit_cancel": controller.cancel,
            "dragedit_add_pair": controller.add_pair,
            "dragedit_clear_pairs": controller.clear_pairs,
        }
        for action_id, text in ACTIONS:
            action = window.createAction(action_id, text, MENU)
            action.triggered.connect(lambda _checked=False, slot=slots[action_id]: slot())
