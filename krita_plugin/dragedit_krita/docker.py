"""The "Drag Edit" docker: daemon state, method and parameters, point pairs, Drag/Cancel, progress.

A view over the DragController: widgets call its methods and ``refresh`` reads its state back.
The parameter form is built from the method schema the daemon publishes in ``welcome``.
"""
from __future__ import annotations

import functools
import inspect
import sys
import traceback
from typing import Any, Callable

from krita import DockWidget

from dragedit_protocol.editor.params import MethodSpec, ParamSpec
from dragedit_protocol.editor.session import DAEMON_MODEL, DEMO_MODEL

from .controller import DragController
from .extension import shared_controller
from .qt import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QImage, QInputDialog, QLabel,
    QLineEdit, QListWidget, QPixmap, QProgressBar, QPushButton, QScrollArea, QSpinBox, Qt, QTimer, QToolButton,
    QVBoxLayout, QWidget,
)

TITLE = "Drag Edit"
PREVIEW_WIDTH = 256
MAX_HEIGHT = 520  # the most the docker asks of the dock area's height; more scrolls
# model choices that ask for the value first: (label, data)
MODEL_PICKERS = (("A .safetensors file...", "?file"), ("A diffusers folder...", "?folder"),
                 ("A model id from the Hugging Face hub...", "?hub"))
INT_LIMIT = 2**31 - 1


def guarded(method: Callable) -> Callable:
    """A widget slot that never lets an exception reach Krita's error dialog.

    Qt signals often carry more arguments than a slot takes (``clicked`` sends ``checked``,
    ``activated`` an index). PyQt drops the extras only when a slot's signature says so, and a
    wrapper taking ``*args`` says nothing: so the wrapper passes the method only as many
    positional arguments as it declares.
    """
    parameters = list(inspect.signature(method).parameters.values())[1:]  # without self
    takes_all = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    wanted = len([p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])

    @functools.wraps(method)
    def wrapper(self: DragEditDocker, *args: Any) -> None:
        try:
            method(self, *(args if takes_all else args[:wanted]))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.message.setText(f"DragEdit hit an unexpected problem ({type(exc).__name__}: {exc}).")

    return wrapper


class DragEditDocker(DockWidget):
    """Settings > Dockers > Drag Edit."""

    def __init__(self, controller: DragController | None = None):
        super().__init__()
        controller = controller or shared_controller()
        self.setWindowTitle(TITLE)
        self.controller = controller
        self._form_key: tuple = ()
        body = QWidget()
        layout = QVBoxLayout(body)

        self.daemon = QLabel()
        self.daemon.setWordWrap(True)
        layout.addWidget(self.daemon)

        row = QHBoxLayout()
        row.addWidget(QLabel("Method"))
        self.method = QComboBox()
        self.method.activated.connect(self._method_chosen)
        row.addWidget(self.method, 1)
        layout.addLayout(row)

        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Model"))
        self.model = QComboBox()
        self.model.setToolTip("The diffusion model drags use: the daemon's own, the demo model, or one you pick")
        self.model.activated.connect(self._model_chosen)
        model_row.addWidget(self.model, 1)
        layout.addLayout(model_row)

        self.basic = QFormLayout()
        layout.addLayout(self.basic)
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        layout.addWidget(self.advanced_toggle)
        self.advanced_box = QWidget()
        advanced_layout = QVBoxLayout(self.advanced_box)
        advanced_layout.setContentsMargins(0, 0, 0, 0)
        self.advanced = QFormLayout()
        advanced_layout.addLayout(self.advanced)
        extra = QFormLayout()
        self.seed = QLineEdit()
        self.seed.setPlaceholderText("random")
        self.seed.editingFinished.connect(self._seed_changed)
        extra.addRow("Seed", self.seed)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("optional description of the image")
        self.prompt.editingFinished.connect(self._prompt_changed)
        extra.addRow("Prompt", self.prompt)
        self.endpoint = QLineEdit()
        self.endpoint.setPlaceholderText("installed default")
        self.endpoint.editingFinished.connect(self._endpoint_changed)
        extra.addRow("Daemon", self.endpoint)
        advanced_layout.addLayout(extra)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip("Put every parameter of this method back to its published default")
        self.reset_button.clicked.connect(self._reset)
        advanced_layout.addWidget(self.reset_button)
        self.advanced_box.setVisible(False)
        layout.addWidget(self.advanced_box)

        source_row = QHBoxLayout()
        self.source = QComboBox()
        self.source.addItem("Active layer", "layer")
        self.source.addItem("Visible image", "visible")
        self.source.activated.connect(self._source_chosen)
        source_row.addWidget(self.source, 1)
        layout.addLayout(source_row)
        soft_edge_row = QHBoxLayout()
        soft_edge_label = QLabel("Soft edge")
        self.soft_edge = QSpinBox()
        self.soft_edge.setRange(0, 200)
        self.soft_edge.setSuffix(" px")
        for widget in (soft_edge_label, self.soft_edge):
            widget.setToolTip("Width over which the edited pixels fade into the original at the selection's edge")
        self.soft_edge.valueChanged.connect(self._soft_edge_changed)
        soft_edge_row.addWidget(soft_edge_label)
        soft_edge_row.addWidget(self.soft_edge)
        soft_edge_row.addStretch(1)
        layout.addLayout(soft_edge_row)

        self.editable_area = QLabel()
        self.editable_area.setWordWrap(True)
        layout.addWidget(self.editable_area)
        layout.addWidget(QLabel("Point pairs (red handle \u2192 blue target)"))
        self.pairs = QListWidget()
        self.pairs.setMaximumHeight(110)
        layout.addWidget(self.pairs)
        pair_row = QHBoxLayout()
        self.add_pair_button = QPushButton("Add point pair")
        self.add_pair_button.setToolTip("Add an arrow inside the selection; move its ends with the shape tools")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the pair picked in the list")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove every point pair")
        for button, slot in ((self.add_pair_button, self._add_pair), (self.remove_button, self._remove_pair),
                             (self.clear_button, self._clear)):
            button.clicked.connect(slot)
            pair_row.addWidget(button)
        layout.addLayout(pair_row)

        run_row = QHBoxLayout()
        self.drag_button = QPushButton("Drag")
        self.drag_button.clicked.connect(self._drag)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        run_row.addWidget(self.drag_button, 2)
        run_row.addWidget(self.cancel_button, 1)
        layout.addLayout(run_row)
        self.readiness = QLabel()  # whether the daemon has the next drag ready (prepared ahead)
        self.readiness.setWordWrap(True)
        layout.addWidget(self.readiness)
        self.live_preview = QCheckBox("Live preview")
        self.live_preview.toggled.connect(self._live_preview_changed)
        layout.addWidget(self.live_preview)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.message = QLabel()  # right under the status: the artist must see it without scrolling
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.preview)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        # Ask the dock area for the room the controls need (height up to MAX_HEIGHT; beyond it, scroll):
        # without this Krita squeezes the docker between its neighbours to a strip of ~120 px and
        # cuts its buttons off at the right.
        scroll.setMinimumHeight(min(body.sizeHint().height() + 4, MAX_HEIGHT))
        scroll.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.setWidget(scroll)

        self._load_settings()
        controller.listen(self.refresh)
        self._pairs_timer = QTimer(self)
        self._pairs_timer.timeout.connect(self._refresh_pairs)
        self._pairs_timer.timeout.connect(self._prepare_ahead)
        self._pairs_timer.start(1000)
        self.refresh()

    # ------------------------------------------------------------------ Krita hooks

    def canvasChanged(self, canvas: Any) -> None:
        self._refresh_pairs()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.controller.connect()  # contact (and if needed start) the daemon once the artist opens the docker

    # ------------------------------------------------------------------ view

    def _load_settings(self) -> None:
        settings, params = self.controller.settings, self.controller.params
        self.source.setCurrentIndex(max(0, self.source.findData(settings.source)))
        self.soft_edge.setValue(settings.soft_edge)
        self.live_preview.setChecked(settings.live_preview)
        self.seed.setText("" if params.seed is None else str(params.seed))
        self.prompt.setText(params.prompt)
        self.endpoint.setText(settings.endpoint)

    def _fill_models(self) -> None:
        """The model list: the daemon's own, the demo model, the artist's pick, and ways to pick another."""
        chosen = self.controller.settings.model
        session = self.controller.session
        own = session.welcome_field("model") if session is not None else None
        daemon_label = f"{DAEMON_MODEL[1]} ({own})" if own else DAEMON_MODEL[1]
        items = [(daemon_label, DAEMON_MODEL[0]), (DEMO_MODEL[1], DEMO_MODEL[0])]
        if chosen not in (DAEMON_MODEL[0], DEMO_MODEL[0]):
            items.append((chosen, chosen))
        items += list(MODEL_PICKERS)
        if [(self.model.itemText(i), self.model.itemData(i)) for i in range(self.model.count())] != items:
            self.model.clear()
            for text, data in items:
                self.model.addItem(text, data)
        self.model.setCurrentIndex(max(0, self.model.findData(chosen)))

    @guarded
    def refresh(self) -> None:
        c = self.controller
        self.daemon.setText(c.daemon_text)
        self._fill_models()
        methods, current = c.methods, c.current_method()
        key = (tuple(m.name for m in methods), current.name if current else "", id(c.params))
        if key != self._form_key:
            self._form_key = key
            self._build_form(methods, current)
        job = c.shown_job
        busy = c.session is not None and c.session.busy
        self.drag_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.status.setText(job.status_text() if job else "")
        self.readiness.setText(c.prepare_text)
        self.progress.setValue(int(1000 * job.fraction) if job else 0)
        self._show_preview()
        self.message.setText(c.message)
        if job is not None and job.handles:
            self._refresh_pairs()

    def _build_form(self, methods: list[MethodSpec], current: MethodSpec | None) -> None:
        self.method.clear()
        for m in methods:
            self.method.addItem(m.title, m.name)
            self.method.setItemData(self.method.count() - 1, m.description, Qt.ItemDataRole.ToolTipRole)
        if current is not None:
            self.method.setCurrentIndex(self.method.findData(current.name))
        for form in (self.basic, self.advanced):
            while form.rowCount():
                form.removeRow(0)
        if current is None:
            return
        for spec in current.form_params:
            editor = self._editor(spec, self.controller.params.value(current, spec.name))
            editor.setObjectName("param-" + spec.name)
            tip = f"{spec.description} ({spec.name})"
            editor.setToolTip(tip)
            label = QLabel(spec.label)
            label.setToolTip(tip)
            (self.advanced if spec.advanced else self.basic).addRow(label, editor)
        self.seed.setText("" if self.controller.params.seed is None else str(self.controller.params.seed))
        self.prompt.setText(self.controller.params.prompt)

    def _editor(self, spec: ParamSpec, value: Any) -> QWidget:
        """A widget for one parameter, showing ``value`` and reporting changes to the controller."""
        def report(new: Any) -> None:
            self.controller.set_param(spec.name, new)

        if spec.type == "bool":
            box = QCheckBox()
            box.setChecked(bool(value))
            box.toggled.connect(report)
            return box
        if spec.type == "choice":
            combo = QComboBox()
            combo.addItems(list(spec.choices))
            combo.setCurrentIndex(max(0, combo.findText(str(value))))
            combo.textActivated.connect(report)
            return combo
        if spec.type == "int":
            spin = QSpinBox()
            spin.setRange(int(spec.min) if spec.min is not None else -INT_LIMIT,
                          int(spec.max) if spec.max is not None else INT_LIMIT)
            spin.setValue(int(value))
            spin.editingFinished.connect(lambda: report(spin.value()))
            return spin
        if spec.type == "float":
            spin = QDoubleSpinBox()
            spin.setDecimals(spec.decimals)
            spin.setRange(float(spec.min) if spec.min is not None else -1e9,
                          float(spec.max) if spec.max is not None else 1e9)
            spin.setSingleStep(abs(float(spec.default)) / 10 if spec.default else 0.1)
            spin.setValue(float(value))
            spin.editingFinished.connect(lambda: report(spin.value()))
            return spin
        line = QLineEdit(str(value))
        line.editingFinished.connect(lambda: report(line.text()))
        return line

    def _show_preview(self) -> None:
        """The daemon's small picture of the edit in progress (the handles' positions are in the list)."""
        job = self.controller.job
        if job is None or job.preview is None or job.finished:
            self.preview.clear()
            self.preview.setMinimumSize(0, 0)
            return
        p = job.preview
        image = QImage(p.rgb, p.width, p.height, 3 * p.width, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaledToWidth(PREVIEW_WIDTH, Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(pixmap)
        self.preview.setMinimumSize(pixmap.size())

    @guarded
    def _refresh_pairs(self) -> None:
        if not self.isVisible():
            return
        self.editable_area.setText(self.controller.editable_area_text())
        lines = self.controller.pair_lines()
        if lines != [self.pairs.item(i).text() for i in range(self.pairs.count())]:
            row = self.pairs.currentRow()
            self.pairs.clear()
            self.pairs.addItems(lines)
            self.pairs.setCurrentRow(min(row, self.pairs.count() - 1))

    @guarded
    def _prepare_ahead(self) -> None:
        if self.isVisible():
            self.controller.prepare_ahead()

    # ------------------------------------------------------------------ slots

    @guarded
    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_box.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    @guarded
    def _method_chosen(self, index: int) -> None:
        self.controller.set_method(self.method.itemData(index))

    @guarded
    def _model_chosen(self, index: int) -> None:
        value = self.model.itemData(index)
        if value.startswith("?"):  # ask for it; a cancelled dialog keeps the current model
            if value == "?file":
                value = QFileDialog.getOpenFileName(self, "Stable Diffusion 1.5 checkpoint", "",
                                                    "Checkpoints (*.safetensors)")[0]
            elif value == "?folder":
                value = QFileDialog.getExistingDirectory(self, "Diffusers model folder (with unet/, vae/, ...)")
            else:
                text, ok = QInputDialog.getText(self, "Model id",
                                                "Hugging Face hub id, e.g. runwayml/stable-diffusion-v1-5")
                value = text.strip() if ok else ""
            if not value:
                self._fill_models()
                return
        self.controller.set_model(value)
        self._fill_models()

    @guarded
    def _seed_changed(self) -> None:
        self.controller.set_seed(self.seed.text())

    @guarded
    def _prompt_changed(self) -> None:
        self.controller.set_prompt(self.prompt.text())

    @guarded
    def _endpoint_changed(self) -> None:
        if self.endpoint.text().strip() != self.controller.settings.endpoint:
            self.controller.set_endpoint(self.endpoint.text())

    @guarded
    def _reset(self) -> None:
        self._form_key = ()  # rebuild the form with the defaults
        self.controller.reset_params()

    @guarded
    def _source_chosen(self, index: int) -> None:
        self.controller.settings.source = self.source.itemData(index)

    @guarded
    def _soft_edge_changed(self, value: int) -> None:
        self.controller.settings.soft_edge = value

    @guarded
    def _live_preview_changed(self, on: bool) -> None:
        self.controller.settings.live_preview = on

    @guarded
    def _add_pair(self) -> None:
        self.controller.add_pair()
        self._refresh_pairs()

    @guarded
    def _remove_pair(self) -> None:
        self.controller.remove_pair(self.pairs.currentRow() + 1)
        self._refresh_pairs()

    @guarded
    def _clear(self) -> None:
        self.controller.clear_pairs()
        self._refresh_pairs()

    @guarded
    def _drag(self) -> None:
        self.controller.drag()

    @guarded
    def _cancel(self) -> None:
        self.controller.cancel()
