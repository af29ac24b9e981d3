"""Make the Krita plug-in's modules importable without Krita.

The package's __init__ registers the extension with the running Krita (and needs PyQt), so the
tests load its modules from a bare package object instead; what touches Krita goes through
fake_krita, and the Qt parts are exercised inside the real Krita by tests/e2e/test_krita.py.
"""
import sys
import types
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "krita_plugin" / "dragedit_krita"

if "dragedit_krita" not in sys.modules:
    package = types.ModuleType("dragedit_krita")
    package.__path__ = [str(PLUGIN_DIR)]
    sys.modules["dragedit_krita"] = package
