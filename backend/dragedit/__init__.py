"""DragEdit: point-based drag editing with diffusion models, served to image editors."""

__version__ = "0.1.0"
