"""The Qt classes the Krita e2e scripts use, from PyQt5 (Krita 5) or PyQt6 (Krita 6)."""
try:
    from PyQt5.QtWidgets import QApplication, QCheckBox, QDockWidget, QScrollArea, QWidget  # noqa: F401
except ImportError:
    from PyQt6.QtWidgets import QApplication, QCheckBox, QDockWidget, QScrollArea, QWidget  # noqa: F401
