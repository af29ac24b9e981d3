"""A small in-memory fake of the libkis calls DragEdit makes (Krita 5.1 behaviour).

Faithful where the plug-in depends on it: pixel data is BGRA, selections are one byte per
pixel, ``addShapesFromSvg`` reads SVG user units as pixels and ``toSvg`` answers in points
with a transform (scaled by 72 / resolution) and undeclared ``sodipodi:`` attributes, vector
layers have an offset (``position``), and only ``addChildNode`` is recorded on the undo stack.
"""
from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

_ids = itertools.count(1)


class Point:
    def __init__(self, x: float, y: float):
        self._x, self._y = x, y

    def x(self):
        return self._x

    def y(self):
        return self._y


class Node:
    def __init__(self, doc: "Document", name: str, kind: str):
        self.doc, self._name, self._type = doc, name, kind
        self._children: list[Node] = []
        self._parent: Node | None = None
        self._id = f"node-{next(_ids)}"
        self._visible = True
        self._position = Point(0, 0)
        self.color = ("RGBA", "U8")
        self.pixels = bytearray(doc.width() * doc.height() * 4) if kind == "paintlayer" else None

    def name(self):
        return self._name

    def setName(self, name):
        self._name = name

    def type(self):
        return self._type

    def uniqueId(self):
        return self._id

    def childNodes(self):
        return list(self._children)

    def parentNode(self):
        return self._parent

    def addChildNode(self, child: "Node", above: "Node | None"):
        index = len(self._children) if above is None else self._children.index(above) + 1
        self._children.insert(index, child)
        child._parent = self
        self.doc.undo_steps.append(("add", child.name()))
        return True

    def remove(self):
        self._parent._children.remove(self)
        self.doc.undo_steps.append(("remove", self.name()))
        return True

    def visible(self):
        return self._visible

    def setVisible(self, value):
        self._visible = value

    def position(self):
        return self._position

    def move(self, x, y):
        self._position = Point(x, y)

    def colorModel(self):
        return self.color[0]

    def colorDepth(self):
        return self.color[1]

    def _rect_bytes(self, buffer, channels, x, y, w, h):
        width = self.doc.width()
        return b"".join(bytes(buffer[((y + r) * width + x) * channels:((y + r) * width + x + w) * channels])
                        for r in range(h))

    def pixelData(self, x, y, w, h):
        return self._rect_bytes(self.pixels, 4, x, y, w, h)

    def setPixelData(self, data, x, y, w, h):
        assert isinstance(data, (bytes, bytearray)) and len(data) == w * h * 4
        width = self.doc.width()
        for r in range(h):
            start = ((y + r) * width + x) * 4
            self.pixels[start:start + w * 4] = data[r * w * 4:(r + 1) * w * 4]
        if self._parent is not None:
            self.doc.undo_steps.append(("pixels", self.name()))  # not what the plug-in should do


class Shape:
    def __init__(self, layer: "VectorLayer", svg: str):
        self.layer, self._svg = layer, svg

    def name(self):
        return ""

    def toSvg(self):
        return self._svg

    def remove(self):
        self.layer._shapes.remove(self)
        return True


class VectorLayer(Node):
    def __init__(self, doc, name):
        super().__init__(doc, name, "vectorlayer")
        self._shapes: list[Shape] = []

    def shapes(self):
        return list(self._shapes)

    def addShapesFromSvg(self, svg: str):
        """Like Krita: SVG user units are pixels; toSvg() answers in points (scale 72 / resolution)."""
        s = 72.0 / self.doc.xRes()
        root = ET.fromstring(svg)
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] == "path":
                d = element.get("d")
                self._shapes.append(Shape(self, f'<path id="shape0" transform="matrix({s} 0 0 {s} 0 0)" fill="none" '
                                                f'stroke="#ff0000" d="{d}" sodipodi:nodetypes="cc"/>'))
        return self.shapes()

    def add_raw_shape(self, svg_in_points: str):
        """A shape exactly as Krita's toSvg() would print it (points, own transform)."""
        self._shapes.append(Shape(self, svg_in_points))


class Selection:
    def __init__(self, width: int, height: int, data: bytes | None = None):
        self.w, self.h = width, height
        self.data = bytearray(data if data is not None else bytes(width * height))
        self.feathered = 0

    def select(self, x, y, w, h, value):
        for r in range(y, y + h):
            self.data[r * self.w + x:r * self.w + x + w] = bytes([value]) * w

    def pixelData(self, x, y, w, h):
        return b"".join(bytes(self.data[(y + r) * self.w + x:(y + r) * self.w + x + w]) for r in range(h))

    def _bounds(self):
        xs = [i % self.w for i, v in enumerate(self.data) if v]
        ys = [i // self.w for i, v in enumerate(self.data) if v]
        return (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1) if xs else (0, 0, 0, 0)

    def x(self):
        return self._bounds()[0]

    def y(self):
        return self._bounds()[1]

    def width(self):
        return self._bounds()[2]

    def height(self):
        return self._bounds()[3]

    def duplicate(self):
        return Selection(self.w, self.h, bytes(self.data))

    def shrink(self, x, y, edge_lock):
        """Stand-in for Krita's shrink: one ring of edge pixels is deselected (whatever the radius)."""
        self.shrunk = (x, y)
        src = bytes(self.data)
        for i, v in enumerate(src):
            px, py = i % self.w, i // self.w
            if v and any(not (0 <= px + dx < self.w and 0 <= py + dy < self.h) or not src[(py + dy) * self.w + px + dx]
                         for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))):
                self.data[i] = 0

    def feather(self, radius):
        """Stand-in for Krita's feather: the edge pixels inside become half selected."""
        self.feathered = radius
        src = bytes(self.data)
        for i, v in enumerate(src):
            x, y = i % self.w, i // self.w
            if v and any(0 <= x + dx < self.w and 0 <= y + dy < self.h and not src[(y + dy) * self.w + x + dx]
                         for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))):
                self.data[i] = 128


class Document:
    def __init__(self, width: int, height: int, resolution: float = 72.0):
        self._w, self._h, self._res = width, height, resolution
        self.undo_steps: list[tuple[str, str]] = []
        self.root = Node(self, "root", "grouplayer")
        self._active: Node | None = None
        self._selection: Selection | None = None
        self.annotations: dict[str, bytes] = {}
        self.color = ("RGBA", "U8")
        self.closed = False
        self.projection_refreshes = 0

    def width(self):
        return self._w

    def height(self):
        return self._h

    def xRes(self):
        return self._res

    def yRes(self):
        return self._res

    def resolution(self):
        return int(self._res)

    def rootNode(self):
        return None if self.closed else self.root

    def activeNode(self):
        return self._active

    def setActiveNode(self, node):
        self._active = node

    def createNode(self, name, kind):
        return Node(self, name, kind)

    def createVectorLayer(self, name):
        return VectorLayer(self, name)

    def selection(self):
        return None if self._selection is None else self._selection.duplicate()

    def setSelection(self, selection):
        self._selection = selection

    def colorModel(self):
        return self.color[0]

    def colorDepth(self):
        return self.color[1]

    def pixelData(self, x, y, w, h):
        """The projection: here simply the topmost visible paint layer (enough for the tests)."""
        visible = [n for n in self.root.childNodes() if n.visible()]
        for node in reversed(visible):
            if node.type() == "vectorlayer" and node.shapes():
                raise AssertionError("the arrows of a visible points layer would be in the projection")
            if node.type() == "paintlayer":
                return node.pixelData(x, y, w, h)
        return bytes(w * h * 4)

    def refreshProjection(self):
        self.projection_refreshes += 1

    def waitForDone(self):
        pass

    def annotation(self, key):
        return self.annotations.get(key, b"")

    def setAnnotation(self, key, description, data):
        assert isinstance(data, (bytes, bytearray))
        self.annotations[key] = bytes(data)

    # helpers for tests
    def add_paint_layer(self, name: str, bgra_pixel: bytes) -> Node:
        node = self.createNode(name, "paintlayer")
        node.pixels = bytearray(bgra_pixel * (self._w * self._h))
        self.root.addChildNode(node, None)
        self.undo_steps.clear()
        return node

    def node_names(self) -> list[str]:
        return [n.name() for n in self.root.childNodes()]


class Krita:
    _instance: "Krita | None" = None

    def __init__(self):
        self.documents: list[Document] = []
        self.active: Document | None = None
        self.settings: dict[tuple[str, str], str] = {}

    @classmethod
    def instance(cls) -> "Krita":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def version(self):
        return "5.1.5"

    def activeDocument(self):
        return self.active

    def readSetting(self, group, key, default):
        return self.settings.get((group, key), default)

    def writeSetting(self, group, key, value):
        assert isinstance(value, str), "Krita settings are strings"
        self.settings[(group, key)] = value

