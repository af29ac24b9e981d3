"""Shared by the Krita e2e scripts (runs inside Krita): the test document and how to watch a drag."""
import json
import os

from krita import Krita, Selection
from PyQt5.QtWidgets import QDockWidget

W, H = 64, 48
SELECTED = (16, 12, 32, 24)  # x, y, width, height
ARROWS = ((22, 20, 30, 22), (36, 28, 40, 32))  # handle x, y -> target x, y in pixels


def source_pixels():
    """A BGRA pattern with structure to drag: a gradient and a bright block."""
    out = bytearray()
    for y in range(H):
        for x in range(W):
            bright = 18 <= x < 34 and 16 <= y < 28
            out += bytes([200 if bright else 4 * x, 220 if bright else 5 * y, 60, 255])
    return bytes(out)


def build_scene(doc):
    """Fill a new document: the paint layer 'source', a rectangular selection, two arrows on the points layer."""
    root = doc.rootNode()
    source = doc.createNode("source", "paintlayer")
    source.setPixelData(source_pixels(), 0, 0, W, H)
    root.addChildNode(source, None)
    selection = Selection()
    selection.select(*SELECTED, 255)
    doc.setSelection(selection)
    points = doc.createVectorLayer("Drag points")
    root.addChildNode(points, None)
    paths = "".join(f'<path d="M {hx} {hy} L {tx} {ty}" stroke="#ff0" fill="none"/>' for hx, hy, tx, ty in ARROWS)
    points.addShapesFromSvg(f'<svg xmlns="http://www.w3.org/2000/svg">{paths}</svg>')
    doc.waitForDone()


def make_fixture(args):
    """kritarunner -s scene -f make_fixture OUT.kra: the scene saved as an artist's file (offscreen, no X).

    Krita 5.2 only: in 5.1 adding shapes needs a view (segfault offscreen), so make_document builds it there.
    """
    doc = Krita.instance().createDocument(W, H, "dragedit-e2e", "RGBA", "U8", "", 144.0)
    build_scene(doc)
    doc.setBatchmode(True)
    saved = doc.saveAs(args[0])
    print("scene saved", saved, args[0], flush=True)
    os._exit(0 if saved else 1)


def make_document(wait_until, reopen=False):
    """The 144 ppi scene document, active, with 'source' the active layer.

    Krita was started on a scene file (make_fixture): that document. Else it is built here in the
    GUI; ``reopen`` then saves and reopens it as an artist's file, so that Krita's own dockers
    (Layers) follow it as they do for a file the artist opens.
    """
    app = Krita.instance()
    if os.environ.get("DRAGEDIT_E2E_SCENE"):
        wait_until(lambda: app.activeDocument() is not None, 60, "the scene file to open")
        doc = app.activeDocument()
    else:
        doc = app.createDocument(W, H, "dragedit-e2e", "RGBA", "U8", "", 144.0)
        app.activeWindow().addView(doc)  # Krita 5.1: vector layers need a view
        wait_until(lambda: app.activeDocument() is not None, 20, "the document to open")
        build_scene(doc)
        if reopen:
            path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "dragedit-e2e-scene.kra")
            doc.setBatchmode(True)
            assert doc.saveAs(path), "saving the scene failed"
            doc.close()
            doc = app.openDocument(path)
            app.activeWindow().addView(doc)
            wait_until(lambda: app.activeDocument() is not None, 20, "the saved scene to open")
    source = next(n for n in doc.rootNode().childNodes() if n.name() == "source")

    def source_active():
        doc.setActiveNode(source)
        return doc.activeNode() is not None and doc.activeNode().name() == "source"

    wait_until(source_active, 10, "the source to be active")
    doc.waitForDone()
    return doc, source


def docker():
    """The Drag Edit docker of the main window."""
    window = Krita.instance().activeWindow().qwindow()
    found = [d for d in window.findChildren(QDockWidget) if d.windowTitle() == "Drag Edit"]
    assert found, "no 'Drag Edit' docker in the main window"
    return found[0]


def layer_names(doc):
    return [n.name() for n in doc.rootNode().childNodes()]


def write_report(report):
    with open(os.environ["DRAGEDIT_E2E_REPORT"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
