"""The Drag Edit dialog: daemon state, method, the method's parameters from the daemon's schema
(main ones first, the rest under "Advanced"), seed, prompt, progress with a live preview of the
edit, and the result of each drag.

The dialog stays open: adjust the path and press Drag again (the daemon's caches make it fast).
With a selection, the daemon gets the drag ready while the artist draws the path (a prepare),
and the dialog says when the drag will start at once.
Everything runs on GTK's main loop; the daemon session is ticked by a GLib timeout.
"""
from __future__ import annotations

import sys
import traceback
from typing import Any

import gi

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, GLib, Gimp, GimpUi, Gtk  # noqa: E402

from dragedit_protocol.editor.errors import UserError  # noqa: E402
from dragedit_protocol.editor.jobs import JobState, Preview  # noqa: E402
from dragedit_protocol.editor.params import MethodSpec, ParamSpec, ParamStore  # noqa: E402
from dragedit_protocol.editor.session import DAEMON_MODEL, DEMO_MODEL, DragSession  # noqa: E402

from .image import DragSource, find_path, path_strokes, read_drag  # noqa: E402
from .registration import MAX_SOFT_EDGE_PX  # noqa: E402
from .run import TICK_MS, DragCancelled, GimpProgress, drag_request, finish_drag  # noqa: E402
from .settings import DragArgs, read_store, resolve_params, write_args  # noqa: E402

INT_LIMIT = 2**31 - 1
PREVIEW_WIDTH = 240  # pixels of the live preview's width in the dialog
PREVIEW_EVERY = 5    # drag steps between the daemon's previews
PREPARE_CHECK_MS = 1000  # how often the image is looked at for a prepare (only its pixels are read less often)

# The Model list: the daemon's own, the demo model shipped with DragEdit, or one the artist names.
OTHER_MODEL = "other"
MODEL_CHOICES = (DAEMON_MODEL, DEMO_MODEL, (OTHER_MODEL, "Other: the file, folder or hub id below"))

class ParamField:
    """One parameter's widget: spin button (int), check box (bool), list (choice) or text entry."""

    def __init__(self, spec: ParamSpec, value: Any):
        self.spec = spec
        if spec.type == "int":
            low = -INT_LIMIT if spec.min is None else spec.min
            high = INT_LIMIT if spec.max is None else spec.max
            self.widget = Gtk.SpinButton.new_with_range(low, high, 1)
            self.widget.set_value(value)
        elif spec.type == "bool":
            self.widget = Gtk.CheckButton(label=spec.label)
            self.widget.set_active(bool(value))
        elif spec.type == "choice":
            self.widget = Gtk.ComboBoxText()
            for choice in spec.choices:
                self.widget.append(choice, choice)
            self.widget.set_active_id(value)
        else:
            self.widget = Gtk.Entry()
            self.widget.set_text(f"{value:g}" if spec.type == "float" else str(value))
        self.widget.set_tooltip_text(spec.description)

    def value(self) -> Any:
        """The widget's value checked against the schema; UserError when it does not fit."""
        if self.spec.type == "int":
            raw: Any = self.widget.get_value_as_int()
        elif self.spec.type == "bool":
            raw = self.widget.get_active()
        elif self.spec.type == "choice":
            raw = self.widget.get_active_id()
        else:
            raw = self.widget.get_text()
        return self.spec.coerce(raw)


class ParamForm:
    """The widgets of one method: main parameters in a grid, the others in an "Advanced" expander."""

    def __init__(self, method: MethodSpec, store: ParamStore):
        self.method = method
        # the engine's feather is not shown: the dialog's Soft edge does that job
        self.fields = [ParamField(spec, store.value(method, spec.name)) for spec in method.form_params]
        self.widget = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        main = [f for f in self.fields if not f.spec.advanced]
        advanced = [f for f in self.fields if f.spec.advanced]
        if main:
            self.widget.pack_start(self._grid(main), False, False, 0)
        if advanced:
            self.expander = Gtk.Expander(label="Advanced")
            self.expander.add(self._grid(advanced))
            self.widget.pack_start(self.expander, False, False, 0)

    @staticmethod
    def _grid(fields: list[ParamField]) -> Gtk.Grid:
        grid = Gtk.Grid(row_spacing=4, column_spacing=8)
        for row, field in enumerate(fields):
            if field.spec.type == "bool":
                grid.attach(field.widget, 1, row, 1, 1)
            else:
                label = Gtk.Label(label=field.spec.label, xalign=0.0)
                label.set_tooltip_text(field.spec.description)
                grid.attach(label, 0, row, 1, 1)
                grid.attach(field.widget, 1, row, 1, 1)
        return grid

    def values(self) -> dict[str, Any]:
        """Every parameter's value; UserError naming the first that does not fit."""
        return {field.spec.name: field.value() for field in self.fields}


class DragDialog:
    """The dialog and the drags it runs; ``run()`` returns how many layers were added."""

    def __init__(self, procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, image: Gimp.Image,
                 session: DragSession):
        self.config = config
        self.image = image
        self.session = session
        self.store = read_store(config)
        self.path_name = config.get_property("path-name") or ""
        self.methods: list[MethodSpec] = []
        self.form: ParamForm | None = None
        self.source: DragSource | None = None
        self.method: MethodSpec | None = None
        self.progress: GimpProgress | None = None
        self.added = 0
        self._build(procedure)

    # ------------------------------------------------------------------ widgets

    def _build(self, procedure: Gimp.Procedure) -> None:
        use_header_bar = Gtk.Settings.get_default().get_property("gtk-dialogs-use-header")
        self.dialog = GimpUi.Dialog(title="Drag Edit", role=procedure.get_name(), use_header_bar=use_header_bar)
        self.dialog.add_button("_Close", Gtk.ResponseType.CLOSE)
        self.dialog.add_button("_Stop", Gtk.ResponseType.CANCEL)
        self.dialog.add_button("_Drag", Gtk.ResponseType.OK)
        self.dialog.connect("response", self._on_response)

        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8, border_width=12)
        self.dialog.get_content_area().pack_start(box, True, True, 0)
        self.daemon_label = self._label(box)
        grid = Gtk.Grid(row_spacing=4, column_spacing=8)
        self.method_combo = Gtk.ComboBoxText(hexpand=True)
        self.method_combo.connect("changed", self._on_method_changed)
        self.seed_entry = Gtk.Entry(placeholder_text="random", hexpand=True)
        self.seed_entry.set_text("" if self.store.seed is None else str(self.store.seed))
        self.seed_entry.set_tooltip_text("The same seed, image and settings give the same result; empty: random")
        prompt_hint = "optional: what the image shows"
        self.prompt_entry = Gtk.Entry(placeholder_text=prompt_hint, width_chars=len(prompt_hint) + 2, hexpand=True)
        self.prompt_entry.set_text(self.store.prompt)
        self.soft_edge = Gtk.SpinButton.new_with_range(0, MAX_SOFT_EDGE_PX, 1)
        self.soft_edge.set_value(self.config.get_property("soft-edge"))
        self.soft_edge.set_tooltip_text("Width in pixels over which the edit fades into the untouched image at "
                                        "the selection's edge (0: a hard edge)")
        self.model_combo = Gtk.ComboBoxText(hexpand=True)
        for model_id, text in MODEL_CHOICES:
            self.model_combo.append(model_id, text)
        self.model_entry = Gtk.Entry(placeholder_text="a .safetensors file, a diffusers folder or a hub id",
                                     hexpand=True)
        remembered = self.config.get_property("model") or ""
        named = (DAEMON_MODEL[0], DEMO_MODEL[0])
        self.model_combo.set_active_id(remembered if remembered in named else OTHER_MODEL)
        if remembered not in named:
            self.model_entry.set_text(remembered)
        self.model_combo.set_tooltip_text("The diffusion model drags use")
        soft_edge_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        soft_edge_row.pack_start(self.soft_edge, False, False, 0)
        soft_edge_row.pack_start(Gtk.Label(label="px"), False, False, 0)
        for row, (text, widget) in enumerate((("Method", self.method_combo), ("Model", self.model_combo),
                                              ("Other model", self.model_entry), ("Seed", self.seed_entry),
                                              ("Prompt", self.prompt_entry), ("Soft edge", soft_edge_row))):
            grid.attach(Gtk.Label(label=text, xalign=0.0), 0, row, 1, 1)
            grid.attach(widget, 1, row, 1, 1)
        box.pack_start(grid, False, False, 0)
        self.description_label = self._label(box)
        self.form_holder = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        box.pack_start(self.form_holder, False, False, 0)
        self.progress_bar = Gtk.ProgressBar(show_text=True, text="")
        box.pack_start(self.progress_bar, False, False, 0)
        self.preview_image = Gtk.Image()  # the daemon's picture of the edit while it runs
        self.preview_image.set_tooltip_text("Live preview of the edit (the region sent to the daemon)")
        box.pack_start(self.preview_image, False, False, 0)
        self._preview_shown: Preview | None = None
        self.status_label = self._label(box)
        self.status_label.set_text(self._hint())
        # whether the daemon has the next drag ready (prepared ahead); shown only with something to say,
        # so that it takes no room from a dialog that is already as tall as many screens
        self.readiness_label = self._label(box)
        self.readiness_label.set_no_show_all(True)
        self._update_buttons()

    def _hint(self) -> str:
        """What to do before pressing Drag, and what may change with the image's selection as it is."""
        steps = "Draw strokes with the Paths tool (first point: handle, last point: target), then press Drag. "
        if Gimp.Selection.is_empty(self.image):
            return steps + ("No selection: the area around the drag points may change (select a region to "
                            "choose what may change instead).")
        return steps + "Only the selected region may change."

    @staticmethod
    def _label(box: Gtk.Box) -> Gtk.Label:
        label = Gtk.Label(xalign=0.0, wrap=True, selectable=True, max_width_chars=60)
        box.pack_start(label, False, False, 0)
        return label

    def _update_buttons(self) -> None:
        busy = self.session.busy
        self.dialog.set_response_sensitive(Gtk.ResponseType.OK, bool(self.methods) and not busy)
        self.dialog.set_response_sensitive(Gtk.ResponseType.CANCEL, busy)

    def _show_methods(self, methods: list[MethodSpec]) -> None:
        """Fill the method list from the daemon's schema, keeping the artist's last choice."""
        self.methods = methods
        self.method_combo.remove_all()
        for method in methods:
            self.method_combo.append(method.name, method.title)
        names = [m.name for m in methods]
        if methods:
            self.method_combo.set_active_id(self.store.method if self.store.method in names else names[0])

    def _on_method_changed(self, combo: Gtk.ComboBoxText) -> None:
        self._keep_form_values()
        name = combo.get_active_id()
        method = next((m for m in self.methods if m.name == name), None)
        if self.form is not None:
            self.form_holder.remove(self.form.widget)
            self.form = None
        self.description_label.set_text(method.description if method else "")
        if method is not None:
            self.store.method = method.name
            self.form = ParamForm(method, self.store)
            self.form_holder.pack_start(self.form.widget, False, False, 0)
            self.form.widget.show_all()

    def _keep_form_values(self) -> None:
        """Remember the shown method's values that fit (switching methods must not lose them)."""
        if self.form is None:
            return
        for field in self.form.fields:
            try:
                self.store.set(self.form.method, field.spec.name, field.value())
            except UserError:
                pass

    # ------------------------------------------------------------------ drag

    def _on_response(self, dialog: GimpUi.Dialog, response: int) -> None:
        if response == Gtk.ResponseType.OK:
            self.start()
        elif response == Gtk.ResponseType.CANCEL:
            self.session.cancel()  # the progress bar says "Cancelling..." until the daemon confirms
        else:  # Close, Escape or the window's close button
            self.session.cancel()
            Gtk.main_quit()
        self._update_buttons()

    def read_args(self) -> DragArgs:
        """The dialog's values, checked; UserError naming the first bad one."""
        if self.form is None:
            raise UserError("No drag method is available yet", "wait until the daemon is ready")
        method = self.form.method
        values = self.form.values()
        for name, value in values.items():
            self.store.set(method, name, value)
        seed = self.store.set_seed(self.seed_entry.get_text())
        self.store.prompt = self.prompt_entry.get_text()
        params = resolve_params(method, self.store.overrides(method))
        model = self.model_combo.get_active_id() or ""
        if model == OTHER_MODEL:
            model = self.model_entry.get_text().strip()
            if not model:
                raise UserError("Model is 'Other' but names no model",
                                "type a .safetensors file, a diffusers folder or a hub id under Other model")
        return DragArgs(method=method.name, params=params, path_name=self.path_name, seed=seed,
                        prompt=self.store.prompt, soft_edge=self.soft_edge.get_value_as_int(), model=model)

    def _read_drag(self) -> tuple[DragSource, DragArgs]:
        """What the image gives a drag now and the dialog's values (Drag and the prepare both read this)."""
        args = self.read_args()
        return read_drag(self.image, self.image.get_selected_drawables(), args.path_name, args.soft_edge), args

    def start(self) -> None:
        """Read the image and the dialog, remember the values, and queue the drag."""
        try:
            self.source, args = self._read_drag()
            self.method = self.form.method
            write_args(self.config, args, self.store)
            self.session.require_model(args.model)
            job = self.session.start_drag(drag_request(self.source, args), seed=args.seed,
                                          preview_every=PREVIEW_EVERY)
        except UserError as err:
            self.status_label.set_text(str(err))
            return
        self.progress = GimpProgress(f"Drag Edit ({self.method.title})")
        self._show_job(job)

    def _show_job(self, job: JobState) -> None:
        """A running job's status, once: in the progress bar (the status line stays empty meanwhile)."""
        self.progress_bar.set_fraction(job.fraction)
        self.progress_bar.set_text(job.status_text())
        self.status_label.set_text("")
        self._show_preview(job.preview)

    def _show_preview(self, preview: Preview | None) -> None:
        """The daemon's latest small picture of the edit, PREVIEW_WIDTH wide; nothing when None."""
        if preview is self._preview_shown:
            return
        self._preview_shown = preview
        if preview is None:
            self.preview_image.clear()
            return
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(preview.rgb), GdkPixbuf.Colorspace.RGB, False, 8,
                                                 preview.width, preview.height, 3 * preview.width)
        height = max(1, round(preview.height * PREVIEW_WIDTH / preview.width))
        self.preview_image.set_from_pixbuf(pixbuf.scale_simple(PREVIEW_WIDTH, height, GdkPixbuf.InterpType.BILINEAR))

    def prepare_ahead(self) -> bool:
        """A GLib timeout, once a second: with a selection and drag points, what Drag would send goes
        to the daemon as a prepare once the path, selection and values have been still a moment
        (and only when it changed), so that the drag starts at once."""
        try:
            self.session.prepare_when_quiet(self._prepare_scene(), lambda: drag_request(*self._read_drag()))
        except Exception:  # a bug: keep the dialog running, the drag will report it
            traceback.print_exc(file=sys.stderr)
        return GLib.SOURCE_CONTINUE

    def _prepare_scene(self) -> tuple | None:
        """What the next drag is made of that is cheap to read (not the pixels); None: nothing to prepare."""
        image = self.image
        if not image.is_valid() or Gimp.Selection.is_empty(image):
            return None
        drawables = image.get_selected_drawables()
        try:
            args = self.read_args()
            strokes = path_strokes(find_path(image, args.path_name))
        except UserError:
            return None
        if len(drawables) != 1 or not strokes:
            return None
        return drawables[0].get_id(), Gimp.Selection.bounds(image), tuple(map(tuple, strokes)), args

    def tick(self) -> bool:
        """One GLib timeout: advance the session and show what changed."""
        self.session.tick()
        self.daemon_label.set_text(self.session.daemon_text)
        readiness = self.session.prepare_text
        self.readiness_label.set_text(readiness)
        self.readiness_label.set_visible(bool(readiness))
        methods = self.session.methods
        if [m.name for m in methods] != [m.name for m in self.methods] or (methods and not self.form):
            self._show_methods(methods)
        job = self.session.job
        if job is not None and not job.finished and self.progress is not None:
            self.progress.show(job)
            self._show_job(job)
        finished = self.session.take_finished()
        if finished is not None:
            self._finish(finished)
        self._update_buttons()
        return GLib.SOURCE_CONTINUE

    def _finish(self, job: JobState) -> None:
        """Add the finished drag's layer, or say why not; the status line alone tells the outcome."""
        if self.progress is not None:
            self.progress.end()
            self.progress = None
        self.progress_bar.set_fraction(1.0 if job.status == "done" else 0.0)
        self.progress_bar.set_text("")
        self._show_preview(None)
        try:
            layer = finish_drag(self.source, self.method, job)
        except DragCancelled:
            self.status_label.set_text("Cancelled; the image was not changed.")
            return
        except UserError as err:
            self.status_label.set_text(f"{err} The image was not changed.")
            return
        self.added += 1
        self.status_label.set_text(f"Added the layer '{layer.get_name()}'. {job.result_summary()} Adjust the path "
                                   "and drag again, or close.")

    def run(self) -> int:
        """Show the dialog until it is closed; returns the number of layers added."""
        self.dialog.show_all()
        source_ids = (GLib.timeout_add(TICK_MS, self.tick), GLib.timeout_add(PREPARE_CHECK_MS, self.prepare_ahead))
        try:
            Gtk.main()
        finally:
            for source_id in source_ids:
                GLib.source_remove(source_id)
            if self.progress is not None:
                self.progress.end()
            self.dialog.destroy()
            self.config = None  # libgimp requires the config to have no other reference after the run
        return self.added


def run_dialog(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, image: Gimp.Image,
               session: DragSession) -> int:
    """The interactive run: the dialog until closed; returns the number of layers added."""
    GimpUi.init("dragedit")
    return DragDialog(procedure, config, image, session).run()
