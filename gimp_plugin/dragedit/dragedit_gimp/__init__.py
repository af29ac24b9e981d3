"""DragEdit's GIMP 3 layer: reads the layer, selection and drag path, runs the job, adds the layer.

Everything editor-neutral (daemon session, job state, crop/paste maths, parameter schema) is in
``dragedit_protocol.editor``; these modules only touch GIMP's API (Gimp, Gegl, GLib, GimpUi).
"""
import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")

PROCEDURE = "plug-in-dragedit"
MENU_PATH = "<Image>/Filters/Distorts"
MENU_LABEL = "_Drag Edit..."
PLUGIN_VERSION = "0.1.0"
