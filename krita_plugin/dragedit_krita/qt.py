"""The one place the plug-in imports Qt: PyQt5 (Krita 5) or PyQt6 (Krita 6).

Use fully scoped enums (``Qt.AlignmentFlag.AlignLeft``, ``QImage.Format.Format_RGB888``): both
bindings accept them, so nothing else changes between Krita 5 and 6.
"""
try:
    from PyQt5.QtCore import Qt, QTimer  # noqa: F401
    from PyQt5.QtGui import QImage, QPixmap  # noqa: F401
    from PyQt5.QtWidgets import (  # noqa: F401
        QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit,
        QListWidget, QProgressBar, QPushButton, QScrollArea, QSpinBox, QToolButton, QVBoxLayout, QWidget,
    )

except ImportError:
    from PyQt6.QtCore import Qt, QTimer  # noqa: F401
    from PyQt6.QtGui import QImage, QPixmap  # noqa: F401
    from PyQt6.QtWidgets import (  # noqa: F401
        QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit,
        QListWidget, QProgressBar, QPushButton, QScrollArea, QSpinBox, QToolButton, QVBoxLayout, QWidget,
    )
