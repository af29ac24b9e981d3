#!/usr/bin/env python3
"""GIMP 3 entry point of DragEdit (Filters > Distorts > Drag Edit...).

pyzmq, msgpack and dragedit_protocol come from this folder's _vendor/ (install.py puts them
there for GIMP's Python), never from the system's site-packages.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "_vendor"), HERE]

import dragedit_gimp  # noqa: E402  (after the path set-up; it requires the gi versions)
from gi.repository import Gimp  # noqa: E402

try:
    from dragedit_gimp.plugin import DragEditPlugIn as PlugIn
except ImportError as error:  # _vendor/ missing or for another Python: keep the menu entry, explain
    from dragedit_gimp.fallback import broken_install_plugin

    PlugIn = broken_install_plugin(error)

Gimp.main(PlugIn.__gtype__, sys.argv)
