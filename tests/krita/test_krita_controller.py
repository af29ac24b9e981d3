"""The plug-in's actions end to end against fake_krita and a scripted daemon client."""
import json

import pytest

from dragedit_protocol import DEFAULT_ENDPOINT
from dragedit_krita.controller import PREVIEW_EVERY, DragController
from dragedit_krita import document

from fake_client import FakeClient
from test_core_session import Clock
from fake_krita import Document, Krita, Selection

W, H = 60, 40
SOURCE_BGRA = bytes([10, 20, 30, 255])


@pytest.fixture
def app():
    return Krita()


@pytest.fixture
def clients():
    return []


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def controller(app, clients, clock, tmp_path):
    def make(endpoint):
        clients.append(FakeClient(endpoint, "ready"))
        return clients[-1]

    return DragController(app, tmp_path / "_vendor", make_client=make, clock=clock)


def open_doc(app, resolution=144.0):
    doc = Document(W, H, resolution)
    src = doc.add_paint_layer("src", SOURCE_BGRA)
    doc.setActiveNode(src)
    selection = Selection(W, H)
    selection.select(10, 10, 20, 15, 255)
    doc.setSelection(selection)
    layer = document.ensure_points_layer(doc)
    s = 72.0 / resolution  # two arrows, written the way Krita prints shapes (points)
    layer.add_raw_shape(f'<path transform="matrix({s} 0 0 {s} 0 0)" d="M12 12L20 14" sodipodi:nodetypes="cc"/>')
    layer.add_raw_shape(f'<path transform="matrix({s} 0 0 {s} 0 0)" d="M25 20L28 22" sodipodi:nodetypes="cc"/>')
    doc.setActiveNode(src)
    doc.undo_steps.clear()
    app.active = doc
    return doc, src


def result_for(submitted, rgba_pixel=bytes([200, 100, 50, 255]), seed=7):
    return {"type": "result", "job_id": submitted["job_id"], "seed": seed, "handles": [],
            "image": {"width": submitted["width"], "height": submitted["height"],
                      "data": rgba_pixel * (submitted["width"] * submitted["height"])}}


def test_drag_sends_the_selection_region_and_inserts_the_result(app, controller, clients):
    doc, src = open_doc(app)
    controller.tick()
    controller.drag()
    assert controller.message == ""
    sent = clients[0].submitted[0]
    assert sent["method"] == "dragdiffusion" and sent["params"] == {} and sent["preview_every"] == PREVIEW_EVERY
    assert sent["rgba"][:4] == bytes([30, 20, 10, 255])  # RGBA, not Krita's BGRA
    region = controller.plan.region
    assert (sent["width"], sent["height"]) == (region.width, region.height)
    handles = [(p[0] + region.x, p[1] + region.y) for p in sent["points"]]
    assert handles == [(11.5, 11.5), (24.5, 19.5)]  # pixel-index coordinates of the shapes' first nodes
    clients[0].inbox = [{"type": "progress", "job_id": sent["job_id"], "phase": "drag", "step": 5, "total": 10}]
    controller.tick()
    assert controller.job.status_text() == "Dragging 5/10"
    clients[0].inbox = [result_for(sent)]
    controller.tick()
    assert doc.node_names() == ["src", "DragDiffusion drag (seed 7)", "Drag points"]
    layer = doc.root.childNodes()[1]
    assert layer.pixelData(15, 15, 1, 1) == bytes([50, 100, 200, 255])  # inside the selection: edited
    assert layer.pixelData(5, 5, 1, 1) == SOURCE_BGRA                   # outside: the source's pixels
    assert layer.pixelData(45, 35, 1, 1) == SOURCE_BGRA                 # outside the region sent
    assert bytes(src.pixels) == SOURCE_BGRA * (W * H)                    # the source is untouched
    assert doc.undo_steps == [("add", "DragDiffusion drag (seed 7)")]         # one undo step
    assert "Added layer 'DragDiffusion drag (seed 7)'" in controller.message
    doc.setActiveNode(layer)  # Krita activates the new layer...
    controller.tick()
    assert doc.activeNode() is src  # ...the source is made active again to drag once more


def test_changed_parameters_are_sent_named_in_the_layer_and_persisted(app, controller, clients):
    doc, _ = open_doc(app)
    controller.tick()
    controller.connect()
    controller.set_method("dragdiffusion")
    controller.set_param("lr", "0.02")
    controller.set_seed("42")
    controller.set_prompt("a red car")
    controller.drag()
    sent = clients[0].submitted[0]
    assert (sent["params"], sent["seed"], sent["prompt"]) == ({"lr": 0.02}, 42, "a red car")
    clients[0].inbox = [result_for(sent, seed=42)]
    controller.tick()
    assert doc.node_names()[1] == "DragDiffusion drag (seed 42; Drag rate 0.02)"
    saved = json.loads(app.settings[("DragEdit", "params")])
    assert saved["values"] == {"dragdiffusion": {"lr": 0.02}} and saved["seed"] == 42
    assert json.loads(doc.annotation("dragedit"))["prompt"] == "a red car"
    # a new Krita session starts from the saved settings
    again = DragController(app, controller.vendor_dir, make_client=lambda e: FakeClient(e, "ready"))
    assert again.params.prompt == "a red car" and again.params.seed == 42


def test_a_document_brings_its_own_parameters(app, controller):
    doc, _ = open_doc(app)
    document.save_document_settings(doc, json.dumps({"method": "goodrag", "values": {}, "seed": 5, "prompt": "x"}))
    controller.tick()
    assert controller.params.method == "goodrag" and controller.params.seed == 5


def test_bad_parameter_values_are_reported_not_raised(app, controller):
    open_doc(app)
    controller.connect()
    controller.set_param("drag_steps", "many")
    assert controller.message.startswith("Drag steps must be a whole number")
    controller.set_seed("-3")
    assert "whole number from 0" in controller.message


def test_cancel_adds_no_layer(app, controller, clients):
    doc, _ = open_doc(app)
    controller.drag()
    sent = clients[0].submitted[0]
    controller.cancel()
    assert clients[0].cancelled == [sent["job_id"]]
    clients[0].inbox = [{"type": "cancelled", "job_id": sent["job_id"]}]
    controller.tick()
    assert doc.node_names() == ["src", "Drag points"]
    assert controller.message == "Cancelled: the image is unchanged."


def test_daemon_errors_show_as_sentences(app, controller, clients):
    doc, _ = open_doc(app)
    controller.drag()
    sent = clients[0].submitted[0]
    clients[0].inbox = [{"type": "error", "job_id": sent["job_id"], "code": "out_of_memory",
                         "message": "CUDA out of memory. Tried to allocate 2 GiB", "hint": ""}]
    controller.tick()
    assert controller.message.startswith("The daemon ran out of memory for this edit.")
    assert doc.node_names() == ["src", "Drag points"]


@pytest.mark.parametrize("setup,expected", [
    (lambda doc, src: document.clear_pairs(doc), "has no point pairs"),
    (lambda doc, src: document.points_layer(doc).add_raw_shape('<path d="M 3 3"/>'), "stroke 3 has a single point"),
    (lambda doc, src: document.points_layer(doc).add_raw_shape('<path d="M 3 3 L 90 3"/>'),
     "target of point pair 3 (90, 3) is outside the layer"),
    (lambda doc, src: setattr(src, "color", ("CMYKA", "U8")), "8-bit RGB images, but layer 'src' is CMYKA U8"),
    (lambda doc, src: doc.setSelection(Selection(W, H)), "selection does not cover the layer"),
])
def test_problems_in_the_document_are_explained(app, controller, clients, setup, expected):
    doc, src = open_doc(app, resolution=72.0)
    setup(doc, src)
    controller.drag()
    assert expected in controller.message
    assert not clients[0].submitted


def test_no_open_image(app, controller):
    controller.drag()
    assert controller.message == "No image is open. Open or create an image first."


def test_unexpected_failures_never_escape(app, controller, clients):
    doc, src = open_doc(app)
    src.pixelData = lambda *a: 1 / 0
    controller.drag()
    assert "unexpected problem (ZeroDivisionError" in controller.message
    assert "Krita's log" in controller.message


def test_a_second_drag_while_one_runs_is_refused(app, controller, clients):
    open_doc(app)
    controller.drag()
    controller.drag()
    assert controller.message == "A drag is already running. Wait for it to finish or cancel it."
    assert len(clients[0].submitted) == 1


def test_visible_image_source(app, controller, clients):
    doc, _ = open_doc(app)
    controller.settings.source = "visible"
    controller.drag()
    clients[0].inbox = [result_for(clients[0].submitted[0])]
    controller.tick()
    assert doc.node_names() == ["src", "DragDiffusion drag (seed 7)", "Drag points"]


def test_pair_list_and_editing(app, controller):
    doc, _ = open_doc(app, resolution=72.0)
    assert controller.pair_lines() == ["1: (12, 12) \u2192 (20, 14)", "2: (25, 20) \u2192 (28, 22)"]
    controller.add_pair()
    assert len(controller.pair_lines()) == 3 and "Added a point pair" in controller.message
    controller.remove_pair(1)
    assert controller.pair_lines()[0].startswith("1: (25, 20)")
    controller.remove_pair(9)
    assert controller.message.startswith("There is no point pair 9")
    controller.clear_pairs()
    assert controller.pair_lines() == []


def test_endpoint_precedence_and_validation(app, controller, tmp_path, monkeypatch):
    monkeypatch.delenv("DRAGEDIT_ENDPOINT", raising=False)
    assert controller.endpoint() == DEFAULT_ENDPOINT
    vendor = controller.vendor_dir
    vendor.mkdir()
    (vendor / "dragedit_install.json").write_text(json.dumps(
        {"dragedit": str(tmp_path / "dragedit"), "endpoint": "tcp://127.0.0.1:5001", "version": "0.1.0"}))
    assert controller.endpoint() == "tcp://127.0.0.1:5001"
    monkeypatch.setenv("DRAGEDIT_ENDPOINT", "tcp://127.0.0.1:5002")
    assert controller.endpoint() == "tcp://127.0.0.1:5002"
    controller.set_endpoint("tcp://127.0.0.1:5003")
    assert controller.endpoint() == "tcp://127.0.0.1:5003" and controller.session.endpoint == "tcp://127.0.0.1:5003"
    controller.set_endpoint("localhost:80")
    assert "is not a daemon endpoint" in controller.message
    assert controller.endpoint() == "tcp://127.0.0.1:5003"


def test_not_installed_and_remote_daemons_are_explained(app, tmp_path, monkeypatch):
    monkeypatch.delenv("DRAGEDIT_ENDPOINT", raising=False)
    made = []

    def unreachable(endpoint):
        made.append(FakeClient(endpoint, "unreachable"))
        return made[-1]

    controller = DragController(app, tmp_path / "_vendor", make_client=unreachable)
    controller.connect()
    controller.tick()
    assert "install.py" in controller.daemon_text
    controller.set_endpoint("tcp://192.168.7.7:48611")
    controller.tick()
    assert "runs on another machine: start it there" in controller.daemon_text


def test_a_drag_before_the_daemon_answers_waits_and_keeps_the_saved_values(app, tmp_path):
    made = []

    def connecting(endpoint):
        made.append(FakeClient(endpoint, "connecting"))
        return made[-1]

    app.settings[("DragEdit", "params")] = json.dumps({"method": "goodrag", "values": {"goodrag": {"tracker": "l2"}}})
    controller = DragController(app, tmp_path / "_vendor", make_client=connecting)
    open_doc(app)
    controller.drag()
    assert controller.job.status == "waiting" and not made[0].submitted
    made[-1].become_ready()
    controller.tick()
    sent = made[-1].submitted[0]
    assert (sent["method"], sent["params"]) == ("goodrag", {"tracker": "l2"})


def test_views_refresh_after_actions_and_only_on_changes_while_ticking(app, controller, clients):
    open_doc(app)
    refreshes = []
    controller.listen(lambda: refreshes.append(controller.message))
    controller.tick()                      # a new document: its settings are read
    controller.tick()                      # nothing changed
    assert len(refreshes) == 1
    controller.add_pair()
    assert refreshes[-1].startswith("Added a point pair")
    controller.drag()
    count = len(refreshes)
    controller.tick()
    assert len(refreshes) == count        # the job is waiting for news: nothing to redraw
    clients[0].inbox = [{"type": "queued", "job_id": controller.job.job_id, "position": 1}]
    controller.tick()
    assert len(refreshes) == count + 1


def test_the_pair_list_follows_the_handles_while_the_drag_runs(app, controller, clients):
    open_doc(app, resolution=72.0)
    controller.drag()
    sent = clients[0].submitted[0]
    region = controller.plan.region
    clients[0].inbox = [{"type": "progress", "job_id": sent["job_id"], "phase": "drag", "step": 2, "total": 9,
                         "handles": [[14.5 - region.x, 12.5 - region.y], [26.5 - region.x, 21.5 - region.y]]}]
    controller.tick()
    assert controller.current_handles() == [(15.0, 13.0), (27.0, 22.0)]
    assert controller.pair_lines() == ["1: (12, 12) \u2192 (20, 14), now at (15, 13)",
                                       "2: (25, 20) \u2192 (28, 22), now at (27, 22)"]
    clients[0].inbox = [result_for(sent)]
    controller.tick()
    assert controller.current_handles() == [] and "now at" not in controller.pair_lines()[0]


def quiet_prepare(controller, clock):
    """The docker's once-a-second look, until the scene has been still longer than QUIET_S."""
    for _ in range(3):
        controller.prepare_ahead()
        clock.now += 1.0


def prepared_fields(prepared):
    return {name: value for name, value in prepared.items() if name != "prepare_id"}


def test_added_points_with_a_selection_are_prepared_with_exactly_what_drag_then_sends(app, controller, clients, clock):
    doc, _ = open_doc(app)
    controller.connect()
    controller.set_param("lr", "0.02")
    controller.set_prompt("a red car")
    controller.set_model("toy")
    controller.add_pair()
    controller.prepare_ahead()
    clock.now += 1.0
    controller.prepare_ahead()
    assert clients[0].prepared == []  # the scene has not been still for long enough yet
    clock.now += 1.0
    controller.prepare_ahead()
    assert len(clients[0].prepared) == 1
    controller.drag()
    prepared, submitted = prepared_fields(clients[0].prepared[0]), clients[0].submitted[0]
    assert prepared == {name: submitted[name] for name in prepared}
    assert (prepared["params"], prepared["prompt"], prepared["model"]) == ({"lr": 0.02}, "a red car", "toy")
    assert prepared["mask"] is not None and len(prepared["rgba"]) == 4 * prepared["width"] * prepared["height"]


def test_the_same_content_is_not_prepared_again_and_a_new_selection_is(app, controller, clients, clock):
    doc, _ = open_doc(app)
    controller.connect()
    quiet_prepare(controller, clock)
    assert len(clients[0].prepared) == 1
    clock.now += 30.0  # the layer is read again (it may have been painted on): the same content
    quiet_prepare(controller, clock)
    layer = document.points_layer(doc)
    layer.shapes()[0].remove()  # a point moved inside the selection: the region sent is the same
    layer.add_raw_shape('<path transform="matrix(0.5 0 0 0.5 0 0)" d="M13 13L22 16" sodipodi:nodetypes="cc"/>')
    quiet_prepare(controller, clock)
    assert len(clients[0].prepared) == 1
    selection = Selection(W, H)
    selection.select(8, 8, 24, 20, 255)
    doc.setSelection(selection)
    quiet_prepare(controller, clock)
    assert len(clients[0].prepared) == 2
    assert clients[0].prepared[1]["mask"] != clients[0].prepared[0]["mask"]


@pytest.mark.parametrize("change", [
    lambda doc, controller: doc.setSelection(None),
    lambda doc, controller: document.clear_pairs(doc),
    lambda doc, controller: setattr(controller.settings, "source", "visible"),
    lambda doc, controller: controller.drag(),
])
def test_nothing_is_prepared_without_selection_or_pairs_for_the_visible_image_or_during_a_drag(
        app, controller, clients, clock, change):
    doc, _ = open_doc(app)
    controller.connect()
    change(doc, controller)
    quiet_prepare(controller, clock)
    assert clients[0].prepared == []


def test_the_docker_text_follows_the_prepare_to_ready_and_a_failure_is_one_sentence(app, controller, clients, clock):
    open_doc(app)
    controller.connect()
    refreshes = []
    controller.listen(lambda: refreshes.append(controller.prepare_text))
    assert controller.prepare_text == ""
    quiet_prepare(controller, clock)
    prepare_id = clients[0].prepared[0]["prepare_id"]
    assert refreshes[-1] == "Getting ready for the drag..."
    clients[0].inbox = [{"type": "prepared", "prepare_id": prepare_id, "state": "running", "step": 12, "total": 40,
                         "eta_s": 8.2}]
    controller.tick()
    assert refreshes[-1] == "Getting ready for the drag: 12/40 (about 8 s left)"
    clients[0].inbox = [{"type": "prepared", "prepare_id": "an-older-one", "state": "failed", "error": {}},
                        {"type": "prepared", "prepare_id": prepare_id, "state": "ready", "step": 40, "total": 40}]
    controller.tick()
    assert refreshes[-1] == controller.prepare_text == "Ready: the drag will start at once."
    clients[0].inbox = [{"type": "prepared", "prepare_id": prepare_id, "state": "failed", "error": {
        "code": "out_of_memory", "message": "CUDA out of memory. Tried to allocate 2 GiB", "hint": "x"}}]
    controller.tick()
    assert controller.prepare_text == "Could not get ready for the drag: CUDA out of memory."
