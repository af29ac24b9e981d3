"""The docker shown when the plug-in's vendored libraries cannot be imported."""
from __future__ import annotations

from krita import DockWidget

from .qt import QLabel, Qt


def missing_install_docker(error: ImportError) -> type:
    """A docker class that explains the broken install instead of failing silently."""
    text = (f"DragEdit cannot start: {error}. Its libraries (pyzmq, msgpack) are missing or were built "
            "for another Python. Run 'python3 install.py' in the DragEdit folder, then restart Krita.")

    class MissingInstallDocker(DockWidget):
        def __init__(self) -> None:
            super().__init__()
            self.setWindowTitle("Drag Edit")
            label = QLabel(text)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.setWidget(label)

        def canvasChanged(self, canvas: object) -> None:
            pass

    return MissingInstallDocker
