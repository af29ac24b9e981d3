"""DragEdit for Krita: point-based drag editing with diffusion models (see the README's "Use in Krita").

The plug-in's own copies of pyzmq, msgpack and dragedit_protocol live in ``_vendor/``
(install.py puts them there, built for Krita's Python); that folder goes first on sys.path.
"""
import os
import sys

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor")
if _VENDOR not in sys.path:
    sys.path.insert(0, _VENDOR)


def _register() -> None:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

    app = Krita.instance()
    try:
        import msgpack  # noqa: F401  (both come from _vendor: fail here, with a sentence, if they are missing)
        import zmq  # noqa: F401

        from .docker import DragEditDocker
        from .extension import DragEditExtension
    except ImportError as exc:  # _vendor missing or built for another Python: say what to do
        from .missing import missing_install_docker

        docker_class = missing_install_docker(exc)
    else:
        app.addExtension(DragEditExtension(app))
        docker_class = DragEditDocker
    # Krita 6's PyQt6 bindings scope the enum (DockPosition.DockRight); Krita 5's also accept the short form
    positions = getattr(DockWidgetFactoryBase, "DockPosition", DockWidgetFactoryBase)
    app.addDockWidgetFactory(DockWidgetFactory("dragedit_docker", positions.DockRight, docker_class))


_register()
