"""A small fake of the parts of GIMP 3's Python API (gi.repository) the DragEdit plug-in uses.

``install()`` puts a fake ``gi`` package into sys.modules with Gimp, Gegl, GLib, GObject, GimpUi
and Gtk namespaces. Images hold real pixel bytes, so tests can check what the plug-in reads and
writes. GLib timeouts run in a deterministic loop (no real time passes) until the loop quits.
"""
from __future__ import annotations

import sys
import types
from enum import IntEnum
from typing import Any, Callable

# --------------------------------------------------------------------------- GLib main loop


class _Loop:
    """Timeout callbacks, run round-robin by MainLoop.run / Gtk.main until they quit."""

    MAX_TICKS = 20000

    def __init__(self) -> None:
        self.sources: dict[int, Callable[[], bool]] = {}
        self.next_id = 1
        self.running: list[list[bool]] = []  # one quit flag per nested loop

    def add(self, callback: Callable[[], bool]) -> int:
        source_id, self.next_id = self.next_id, self.next_id + 1
        self.sources[source_id] = callback
        return source_id

    def run(self) -> None:
        flag = [False]
        self.running.append(flag)
        try:
            for _ in range(self.MAX_TICKS):
                if flag[0]:
                    return
                if not self.sources:
                    raise RuntimeError("the main loop runs with no timeout left: it would hang forever")
                for source_id, callback in list(self.sources.items()):
                    if source_id in self.sources and not callback():
                        self.sources.pop(source_id, None)
                    if flag[0]:
                        return
            raise RuntimeError(f"the main loop did not quit within {self.MAX_TICKS} ticks")
        finally:
            self.running.pop()

    def quit(self) -> None:
        if self.running:
            self.running[-1][0] = True


LOOP = _Loop()


class _MainLoop:
    def run(self) -> None:
        LOOP.run()

    def quit(self) -> None:
        LOOP.quit()


class _GError(Exception):
    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


def _timeout_add(interval_ms: int, callback: Callable[[], bool]) -> int:
    return LOOP.add(callback)


def _source_remove(source_id: int) -> bool:
    return LOOP.sources.pop(source_id, None) is not None


class _Bytes(bytes):
    @staticmethod
    def new(data: bytes) -> bytes:
        return bytes(data)


GLib = types.SimpleNamespace(MainLoop=_MainLoop, Error=_GError, Bytes=_Bytes, timeout_add=_timeout_add,
                             source_remove=_source_remove, SOURCE_CONTINUE=True, SOURCE_REMOVE=False)
GObject = types.SimpleNamespace(ParamFlags=types.SimpleNamespace(READWRITE=3))

# --------------------------------------------------------------------------- Gegl


class _Rectangle:
    def __init__(self, x: int, y: int, width: int, height: int):
        self.x, self.y, self.width, self.height = x, y, width, height

    @staticmethod
    def new(x: int, y: int, width: int, height: int) -> _Rectangle:
        return _Rectangle(x, y, width, height)


FORMAT_CHANNELS = {"R'G'B'A u8": 4, "Y u8": 1}


class Buffer:
    """Pixels of one drawable (or the selection) in a fixed format; reads outside are zeros."""

    def __init__(self, width: int, height: int, fmt: str, data: bytearray):
        self.width, self.height, self.format, self.data = width, height, fmt, data
        self.channels = FORMAT_CHANNELS[fmt]
        self.flushed = 0

    def get(self, rect: _Rectangle, scale: float, fmt: str, abyss: int) -> bytes:
        assert fmt == self.format and scale == 1.0, (fmt, scale)
        out = bytearray(rect.width * rect.height * self.channels)
        for row in range(rect.height):
            y = rect.y + row
            if not 0 <= y < self.height:
                continue
            for col in range(rect.width):
                x = rect.x + col
                if 0 <= x < self.width:
                    src = (y * self.width + x) * self.channels
                    dst = (row * rect.width + col) * self.channels
                    out[dst:dst + self.channels] = self.data[src:src + self.channels]
        return bytes(out)

    def set(self, rect: _Rectangle, fmt: str, data: bytes) -> None:
        assert fmt == self.format, fmt
        assert len(data) == rect.width * rect.height * self.channels, "buffer.set with a wrong byte count"
        for row in range(rect.height):
            start = ((rect.y + row) * self.width + rect.x) * self.channels
            self.data[start:start + rect.width * self.channels] = \
                data[row * rect.width * self.channels:(row + 1) * rect.width * self.channels]

    def flush(self) -> None:
        self.flushed += 1


Gegl = types.SimpleNamespace(Rectangle=_Rectangle, AbyssPolicy=types.SimpleNamespace(NONE=0), Buffer=Buffer,
                             Color=types.SimpleNamespace(new=lambda name: name))

# --------------------------------------------------------------------------- Gimp


class ImageBaseType(IntEnum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class ImageType(IntEnum):
    RGB_IMAGE = 0
    RGBA_IMAGE = 1


class PDBStatusType(IntEnum):
    EXECUTION_ERROR = 0
    CALLING_ERROR = 1
    PASS_THROUGH = 2
    SUCCESS = 3
    CANCEL = 4


class RunMode(IntEnum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1
    WITH_LAST_VALS = 2


class ChannelOps(IntEnum):
    ADD = 0
    SUBTRACT = 1
    REPLACE = 2


PROGRESS: list[tuple] = []  # every Gimp.progress_* call, in order
MESSAGES: list[str] = []


class Item:
    _ids = iter(range(1, 1 << 30))

    def __init__(self, name: str):
        self._name = name
        self.valid = True
        self.parent: Item | None = None
        self._id = next(Item._ids)

    def get_id(self) -> int:
        return self._id

    def get_name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def is_valid(self) -> bool:
        return self.valid

    def get_parent(self) -> Item | None:
        return self.parent

    def is_group(self) -> bool:
        return False


class Drawable(Item):
    pass


class Layer(Drawable):
    """An RGBA layer with offsets; ``pixels`` is its bytearray."""

    def __init__(self, image: Image, name: str, width: int, height: int, image_type: int = ImageType.RGBA_IMAGE,
                 opacity: float = 100.0, mode: int = 0):
        super().__init__(name)
        self.image, self.width, self.height = image, width, height
        self.offsets = (0, 0)
        self.pixels = bytearray(width * height * 4)
        self.updates: list[tuple[int, int, int, int]] = []
        self.group = False

    @staticmethod
    def new(image: Image, name: str, width: int, height: int, image_type: int, opacity: float, mode: int) -> Layer:
        return Layer(image, name, width, height, image_type, opacity, mode)

    def get_width(self) -> int:
        return self.width

    def get_height(self) -> int:
        return self.height

    def get_offsets(self) -> tuple[bool, int, int]:
        return True, self.offsets[0], self.offsets[1]

    def set_offsets(self, x: int, y: int) -> None:
        self.offsets = (x, y)

    def get_buffer(self) -> Buffer:
        return Buffer(self.width, self.height, "R'G'B'A u8", self.pixels)

    def update(self, x: int, y: int, width: int, height: int) -> None:
        self.updates.append((x, y, width, height))

    def is_group(self) -> bool:
        return self.group

    def fill(self, rgba: bytes) -> None:
        self.pixels[:] = bytes(rgba) * (self.width * self.height)


class Channel(Drawable):
    """A one-byte-per-pixel mask (a saved selection)."""

    def __init__(self, image: Image | None, name: str, width: int, height: int):
        super().__init__(name)
        self.width, self.height = width, height
        self.mask = bytearray(width * height)

    @staticmethod
    def new(image: Image, name: str, width: int, height: int, opacity: float, color: Any) -> Channel:
        return Channel(image, name, width, height)

    def get_buffer(self) -> Buffer:
        return Buffer(self.width, self.height, "Y u8", self.mask)


class Selection(Channel):
    """The image's selection mask, one byte per canvas pixel."""

    FEATHERED: list[float] = []  # the radius of each feather and shrink, for the tests
    SHRUNK: list[int] = []

    def __init__(self, width: int, height: int):
        super().__init__(None, "Selection Mask", width, height)

    @staticmethod
    def shrink(image: Image, steps: int) -> None:
        """Deselect every pixel within ``steps`` of an unselected one (or of the canvas edge)."""
        Selection.SHRUNK.append(steps)
        m, r = image.selection, steps
        w, h = m.width, m.height
        across = [min(m.mask[y * w + x2] if 0 <= x2 < w else 0 for x2 in range(x - r, x + r + 1))
                  for y in range(h) for x in range(w)]
        m.mask[:] = bytes(min(across[y2 * w + x] if 0 <= y2 < h else 0 for y2 in range(y - r, y + r + 1))
                          for y in range(h) for x in range(w))

    @staticmethod
    def feather(image: Image, radius: float) -> None:
        """A box blur of the given radius across and then down (GIMP's is a Gaussian)."""
        Selection.FEATHERED.append(radius)
        m, r = image.selection, int(radius)
        w, h = m.width, m.height
        across = [sum(m.mask[y * w + min(w - 1, max(0, x + d))] for d in range(-r, r + 1)) // (2 * r + 1)
                  for y in range(h) for x in range(w)]
        m.mask[:] = bytes(sum(across[min(h - 1, max(0, y + d)) * w + x] for d in range(-r, r + 1)) // (2 * r + 1)
                          for y in range(h) for x in range(w))

    @staticmethod
    def is_empty(image: Image) -> bool:
        return not any(image.selection.mask)

    @staticmethod
    def bounds(image: Image) -> tuple[bool, bool, int, int, int, int]:
        m = image.selection
        points = [(i % m.width, i // m.width) for i, v in enumerate(m.mask) if v]
        if not points:
            return True, False, 0, 0, m.width, m.height
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return True, True, min(xs), min(ys), max(xs) + 1, max(ys) + 1


class PathStrokeType(IntEnum):
    BEZIER = 0


class Path(Item):
    """Strokes as GIMP gives them: flat lists of (control in, anchor, control out) x, y triplets."""

    def __init__(self, image: Image, name: str):
        super().__init__(name)
        self.strokes: dict[int, list[float]] = {}

    @staticmethod
    def new(image: Image, name: str) -> Path:
        return Path(image, name)

    def stroke_new_from_points(self, kind: int, coords: list[float], closed: bool) -> int:
        stroke_id = len(self.strokes) + 1
        self.strokes[stroke_id] = list(map(float, coords))
        return stroke_id

    def add_line(self, *anchors: tuple[float, float]) -> int:
        """A stroke through these anchors, control handles on the anchors (a Paths tool polyline)."""
        return self.stroke_new_from_points(PathStrokeType.BEZIER, [c for a in anchors for c in (*a, *a, *a)], False)

    def get_strokes(self) -> list[int]:
        return list(self.strokes)

    def stroke_get_points(self, stroke_id: int) -> tuple[int, list[float], bool]:
        return PathStrokeType.BEZIER, list(self.strokes[stroke_id]), False


class Image:
    """Layers (top first), paths, a selection, an undo-group log."""

    CREATED: list[Image] = []  # every image made, and those deleted, for the tests
    DELETED: list[Image] = []

    def __init__(self, width: int, height: int, base_type: int = ImageBaseType.RGB):
        self.width, self.height, self.base_type = width, height, base_type
        self.layers: list[Layer] = []
        self.paths: list[Path] = []
        self.selected_paths: list[Path] = []
        self.selected_drawables: list[Drawable] = []
        self.selection = Selection(width, height)
        self.channels: list[Channel] = []
        self.undo_log: list[str] = []
        self.valid = True
        Image.CREATED.append(self)

    @staticmethod
    def new(width: int, height: int, base_type: int) -> Image:
        return Image(width, height, base_type)

    def is_valid(self) -> bool:
        return self.valid

    def get_base_type(self) -> int:
        return self.base_type

    def get_width(self) -> int:
        return self.width

    def get_height(self) -> int:
        return self.height

    def insert_layer(self, layer: Layer, parent: Item | None, position: int) -> None:
        assert parent is None, "the fake has no layer groups"
        if self.undo_log and self.undo_log[-1] != "start":
            self.undo_log.append("insert outside an undo group")
        self.layers.insert(position, layer)

    def get_layers(self) -> list[Layer]:
        return list(self.layers)

    def get_item_position(self, item: Item) -> int:
        return self.layers.index(item)

    def insert_path(self, path: Path, parent: Item | None, position: int) -> None:
        self.paths.insert(position, path)

    def get_paths(self) -> list[Path]:
        return list(self.paths)

    def get_selected_paths(self) -> list[Path]:
        return list(self.selected_paths)

    def get_selected_drawables(self) -> list[Drawable]:
        return list(self.selected_drawables)

    def get_selection(self) -> Selection:
        return self.selection

    def select_rectangle(self, op: int, x: int, y: int, width: int, height: int) -> None:
        if op == ChannelOps.REPLACE:
            self.selection.mask[:] = bytes(len(self.selection.mask))
        for row in range(max(0, y), min(self.height, y + height)):
            for col in range(max(0, x), min(self.width, x + width)):
                self.selection.mask[row * self.width + col] = 255

    def insert_channel(self, channel: Channel, parent: Item | None, position: int) -> None:
        self.channels.insert(position, channel)

    def select_item(self, op: int, item: Channel) -> None:
        assert op == ChannelOps.REPLACE, "the fake replaces the selection only"
        self.selection.mask[:] = item.mask

    def undo_disable(self) -> None:
        self.undo_log.append("disabled")

    def delete(self) -> None:
        self.valid = False
        Image.DELETED.append(self)

    def undo_group_start(self) -> None:
        self.undo_log.append("start")

    def undo_group_end(self) -> None:
        self.undo_log.append("end")


class _ValueArray:
    def __init__(self, values: list):
        self.values = values

    def index(self, i: int) -> Any:
        return self.values[i]

    def length(self) -> int:
        return len(self.values)


class ProcedureConfig:
    """Property bag with the procedure's argument defaults."""

    def __init__(self, defaults: dict[str, Any]):
        self.values = dict(defaults)

    def get_property(self, name: str) -> Any:
        return self.values[name]

    def set_property(self, name: str, value: Any) -> None:
        if name not in self.values:
            raise TypeError(f"object has no property named '{name}'")
        self.values[name] = value


class Procedure:
    """Records what the plug-in declares; ``create_config`` gives the argument defaults."""

    def __init__(self, plugin: Any, name: str, proc_type: int, run: Callable, data: Any):
        self.plugin, self.name, self.run_func = plugin, name, run
        self.arguments: dict[str, dict] = {}
        self.aux_arguments: dict[str, dict] = {}
        self.menu_paths: list[str] = []
        self.info: dict[str, Any] = {}

    @staticmethod
    def new(plugin: Any, name: str, proc_type: int, run: Callable, data: Any) -> Procedure:
        return Procedure(plugin, name, proc_type, run, data)

    def get_name(self) -> str:
        return self.name

    def set_image_types(self, types_: str) -> None:
        self.info["image_types"] = types_

    def set_sensitivity_mask(self, mask: int) -> None:
        self.info["sensitivity"] = mask

    def set_menu_label(self, label: str) -> None:
        self.info["menu_label"] = label

    def add_menu_path(self, path: str) -> None:
        self.menu_paths.append(path)

    def set_documentation(self, blurb: str, help_: str, help_id: str) -> None:
        self.info["blurb"] = blurb

    def set_attribution(self, authors: str, copyright_: str, date: str) -> None:
        self.info["authors"] = authors

    def add_string_argument(self, name: str, nick: str, blurb: str, value: str, flags: int) -> None:
        self.arguments[name] = {"type": "str", "default": value, "blurb": blurb}

    def add_int_argument(self, name: str, nick: str, blurb: str, low: int, high: int, value: int, flags: int) -> None:
        assert low <= value <= high and high <= 2**31 - 1, "GIMP int arguments are 32-bit"
        self.arguments[name] = {"type": "int", "default": value, "min": low, "max": high, "blurb": blurb}

    def add_string_aux_argument(self, name: str, nick: str, blurb: str, value: str, flags: int) -> None:
        self.aux_arguments[name] = {"type": "str", "default": value}

    def create_config(self) -> ProcedureConfig:
        defaults = {n: a["default"] for n, a in {**self.arguments, **self.aux_arguments}.items()}
        return ProcedureConfig(defaults)

    def new_return_values(self, status: int, error: _GError) -> _ValueArray:
        return _ValueArray([status] + ([error.message] if error.message else []))


class PlugIn:
    """Gimp.main(cls.__gtype__, argv) records the class in MAIN_CALLS."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__gtype__ = cls


MAIN_CALLS: list[type] = []


def _main(gtype: type, argv: list[str]) -> int:
    MAIN_CALLS.append(gtype)
    return 0


def _progress(name: str) -> Callable:
    def record(*args: Any) -> None:
        PROGRESS.append((name, *args))
    return record


Gimp = types.SimpleNamespace(
    ImageBaseType=ImageBaseType, ImageType=ImageType, PDBStatusType=PDBStatusType, RunMode=RunMode,
    ChannelOps=ChannelOps, PathStrokeType=PathStrokeType, LayerMode=types.SimpleNamespace(NORMAL=28),
    PDBProcType=types.SimpleNamespace(PLUGIN=1), ProcedureSensitivityMask=types.SimpleNamespace(DRAWABLE=1),
    Item=Item, Drawable=Drawable, Layer=Layer, Channel=Channel, Selection=Selection, Path=Path, Image=Image,
    Procedure=Procedure, ImageProcedure=Procedure, ProcedureConfig=ProcedureConfig, PlugIn=PlugIn,
    ValueArray=_ValueArray,
    progress_init=_progress("init"), progress_update=_progress("update"), progress_set_text=_progress("text"),
    progress_end=_progress("end"), displays_flush=lambda: None, message=MESSAGES.append,
    version=lambda: "3.0.4", main=_main,
)

# --------------------------------------------------------------------------- Gtk and GimpUi (the dialog)


class Widget:
    """Any widget: remembers properties, children, signal handlers, sensitivity and tooltip."""

    def __init__(self, **props: Any):
        self.props = dict(props)
        self.children: list[Widget] = []
        self.handlers: dict[str, list[Callable]] = {}
        self.tooltip = ""
        self.shown = False

    def connect(self, signal: str, handler: Callable) -> int:
        self.handlers.setdefault(signal, []).append(handler)
        return len(self.handlers[signal])

    def emit(self, signal: str, *args: Any) -> None:
        for handler in self.handlers.get(signal, []):
            handler(self, *args)

    def set_tooltip_text(self, text: str) -> None:
        self.tooltip = text

    def add(self, child: Widget) -> None:
        self.children.append(child)

    def pack_start(self, child: Widget, expand: bool, fill: bool, padding: int) -> None:
        self.children.append(child)

    def remove(self, child: Widget) -> None:
        self.children.remove(child)

    def attach(self, child: Widget, left: int, top: int, width: int, height: int) -> None:
        self.children.append(child)

    def show_all(self) -> None:
        self.shown = True

    def set_visible(self, visible: bool) -> None:
        self.shown = visible

    def set_no_show_all(self, no_show_all: bool) -> None:
        self.props["no_show_all"] = no_show_all

    def walk(self):
        """This widget and every descendant."""
        yield self
        for child in self.children:
            yield from child.walk()


class Label(Widget):
    def __init__(self, label: str = "", **props: Any):
        super().__init__(**props)
        self.text = label

    def set_text(self, text: str) -> None:
        self.text = text

    def get_text(self) -> str:
        return self.text


class Entry(Widget):
    def __init__(self, **props: Any):
        super().__init__(**props)
        self.text = ""

    def set_text(self, text: str) -> None:
        self.text = text

    def get_text(self) -> str:
        return self.text


class SpinButton(Widget):
    def __init__(self, low: float, high: float, step: float):
        super().__init__()
        self.low, self.high, self.value = low, high, low

    @staticmethod
    def new_with_range(low: float, high: float, step: float) -> SpinButton:
        return SpinButton(low, high, step)

    def set_value(self, value: float) -> None:
        self.value = min(max(value, self.low), self.high)  # GTK clamps to the range

    def get_value_as_int(self) -> int:
        return int(round(self.value))


class CheckButton(Widget):
    def __init__(self, label: str = "", **props: Any):
        super().__init__(**props)
        self.label, self.active = label, False

    def set_active(self, active: bool) -> None:
        self.active = active

    def get_active(self) -> bool:
        return self.active


class ComboBoxText(Widget):
    def __init__(self, **props: Any):
        super().__init__(**props)
        self.items: list[tuple[str, str]] = []
        self.active: str | None = None

    def append(self, item_id: str, text: str) -> None:
        self.items.append((item_id, text))

    def remove_all(self) -> None:
        self.items, self.active = [], None
        self.emit("changed")

    def set_active_id(self, item_id: str) -> bool:
        if item_id not in [i for i, _ in self.items]:
            return False
        if item_id != self.active:
            self.active = item_id
            self.emit("changed")
        return True

    def get_active_id(self) -> str | None:
        return self.active


class ProgressBar(Widget):
    def __init__(self, **props: Any):
        super().__init__(**props)
        self.fraction, self.text = 0.0, ""

    def set_fraction(self, fraction: float) -> None:
        self.fraction = fraction

    def set_text(self, text: str) -> None:
        self.text = text


class Pixbuf:
    """GdkPixbuf.Pixbuf: size and RGB bytes; scaling keeps the source bytes and records the size."""

    def __init__(self, data: bytes, width: int, height: int, rowstride: int):
        assert len(data) == rowstride * height, "pixbuf data does not match its size"
        self.data, self.width, self.height = data, width, height

    @staticmethod
    def new_from_bytes(data: bytes, colorspace: int, has_alpha: bool, bits: int, width: int, height: int,
                       rowstride: int) -> Pixbuf:
        assert not has_alpha and bits == 8
        return Pixbuf(data, width, height, rowstride)

    def scale_simple(self, width: int, height: int, interp: int) -> Pixbuf:
        scaled = Pixbuf(self.data, self.width, self.height, len(self.data) // self.height)
        scaled.width, scaled.height = width, height
        return scaled


GdkPixbuf = types.SimpleNamespace(Pixbuf=Pixbuf, Colorspace=types.SimpleNamespace(RGB=0),
                                  InterpType=types.SimpleNamespace(BILINEAR=2))


class Image_(Widget):
    """Gtk.Image showing a pixbuf or nothing."""

    def __init__(self, **props: Any):
        super().__init__(**props)
        self.pixbuf: Pixbuf | None = None

    def set_from_pixbuf(self, pixbuf: Pixbuf) -> None:
        self.pixbuf = pixbuf

    def clear(self) -> None:
        self.pixbuf = None


class Dialog(Widget):
    """GimpUi.Dialog: buttons by response id; ``respond`` is the artist pressing one."""

    instances: list[Dialog] = []

    def __init__(self, **props: Any):
        super().__init__(**props)
        self.buttons: dict[int, str] = {}
        self.sensitive: dict[int, bool] = {}
        self.content = Widget()
        self.destroyed = False
        Dialog.instances.append(self)

    def add_button(self, label: str, response: int) -> Widget:
        self.buttons[response] = label
        self.sensitive[response] = True
        return Widget()

    def set_response_sensitive(self, response: int, sensitive: bool) -> None:
        self.sensitive[response] = sensitive

    def get_content_area(self) -> Widget:
        return self.content

    def respond(self, response: int) -> None:
        assert self.sensitive.get(response), f"button {self.buttons.get(response)!r} is not sensitive"
        self.emit("response", response)

    def destroy(self) -> None:
        self.destroyed = True

    def walk(self):
        yield self
        yield from self.content.walk()


class ResponseType(IntEnum):
    OK = -5
    CANCEL = -6
    CLOSE = -7
    DELETE_EVENT = -4


class _Settings:
    @staticmethod
    def get_default() -> _Settings:
        return _Settings()

    def get_property(self, name: str) -> Any:
        return False


Gtk = types.SimpleNamespace(
    Widget=Widget, Box=Widget, Grid=Widget, Expander=Widget, Label=Label, Entry=Entry, SpinButton=SpinButton,
    CheckButton=CheckButton, ComboBoxText=ComboBoxText, ProgressBar=ProgressBar, ResponseType=ResponseType,
    Image=Image_,
    Orientation=types.SimpleNamespace(VERTICAL=1, HORIZONTAL=0), Settings=_Settings,
    main=LOOP.run, main_quit=LOOP.quit,
)
GimpUi = types.SimpleNamespace(init=lambda name: None, Dialog=Dialog)

# --------------------------------------------------------------------------- installing


def install() -> None:
    """Make ``import gi`` / ``from gi.repository import Gimp, ...`` give these fakes."""
    gi = types.ModuleType("gi")
    gi.require_version = lambda namespace, version: None
    repository = types.ModuleType("gi.repository")
    for name, namespace in (("Gimp", Gimp), ("Gegl", Gegl), ("GLib", GLib), ("GObject", GObject),
                            ("GimpUi", GimpUi), ("Gtk", Gtk), ("GdkPixbuf", GdkPixbuf)):
        setattr(repository, name, namespace)
    gi.repository = repository
    sys.modules["gi"] = gi
    sys.modules["gi.repository"] = repository


def reset() -> None:
    """Forget recorded calls and pending timeouts between tests."""
    PROGRESS.clear()
    MESSAGES.clear()
    MAIN_CALLS.clear()
    LOOP.sources.clear()
    LOOP.running.clear()
    Dialog.instances.clear()
    Image.CREATED.clear()
    Image.DELETED.clear()
    Selection.FEATHERED.clear()
    Selection.SHRUNK.clear()
