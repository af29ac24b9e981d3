"""The prepare of the next drag: when it is sent, what it carries, and the line the editors show."""
import pytest

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.prepare import QUIET_S, RECHECK_S, PrepareTracker, content_key

from test_core_session import Clock, make_request, session_with


def look(session, clock, read_request, times=2):
    """The editor's once-a-second look at an unchanged scene, QUIET_S apart."""
    for _ in range(times):
        session.prepare_when_quiet("scene", read_request)
        clock.now += QUIET_S


def test_a_prepare_carries_exactly_the_fields_the_submit_of_the_same_request_carries():
    session, clients, clock = session_with("ready")
    request = make_request(params={"lr": 0.02}, prompt="a cat", model="toy")
    look(session, clock, lambda: request)
    session.start_drag(request, seed=3, preview_every=5)
    prepared, submitted = clients[0].prepared[0], clients[0].submitted[0]
    shared = {name: value for name, value in prepared.items() if name != "prepare_id"}
    assert shared == {name: submitted[name] for name in shared}
    assert set(shared) == {"rgba", "width", "height", "mask", "method", "params", "model", "prompt", "vae"}
    assert content_key(request.image_fields()) == content_key(make_request(params={"lr": 0.02}, prompt="a cat",
                                                                           model="toy").image_fields())


@pytest.mark.parametrize("change", [{"params": {"lr": 0.03}}, {"prompt": "a dog"}, {"model": None}, {"vae": "v"},
                                    {"method": "goodrag"}])
def test_the_content_key_changes_with_every_field(change):
    base = {"params": {"lr": 0.02}, "prompt": "a cat", "model": "toy"}
    fields = make_request(**base).image_fields()
    assert content_key(fields) != content_key({**fields, **change})


def test_the_content_key_changes_with_one_pixel_or_mask_byte():
    fields = make_request().image_fields()
    pixel = bytearray(fields["rgba"])
    pixel[5] ^= 1
    mask = bytearray(fields["mask"])
    mask[0] ^= 1
    assert len({content_key(fields), content_key({**fields, "rgba": bytes(pixel)}),
                content_key({**fields, "mask": bytes(mask)})}) == 3


def test_due_once_the_scene_is_quiet_then_again_only_after_the_recheck_time():
    clock = Clock()
    tracker = PrepareTracker(clock)
    assert not tracker.due("a")           # new
    clock.now += QUIET_S - 0.1
    assert not tracker.due("a")           # not quiet long enough
    clock.now += 0.1
    assert tracker.due("a")
    tracker.offer(None, client=None)      # checked (nothing to send)
    clock.now += 1.0
    assert not tracker.due("a")           # checked already
    clock.now += RECHECK_S
    assert tracker.due("a")               # read again: the pixels may have changed
    assert not tracker.due(None) and not tracker.due(None)


def test_the_session_prepares_only_when_ready_and_idle_and_not_what_cannot_be_read():
    session, clients, clock = session_with("connecting")
    request = make_request()
    look(session, clock, lambda: request, times=3)
    assert clients[0].prepared == []      # the daemon has not answered yet

    reads = []

    def unreadable():
        reads.append(clock.now)
        raise UserError("The selection is empty")

    clients[0].become_ready()
    look(session, clock, unreadable, times=3)
    assert len(reads) == 1 and clients[0].prepared == [] and session.prepare_text == ""
    session.start_drag(request)
    clock.now += RECHECK_S
    session.prepare_when_quiet("scene", lambda: request)
    assert clients[0].prepared == []      # a drag runs


def test_prepared_messages_move_the_text_and_a_welcome_makes_the_next_offer_send_again():
    session, clients, clock = session_with("ready")
    request = make_request()
    look(session, clock, lambda: request)
    prepare_id = clients[0].prepared[0]["prepare_id"]
    assert session.prepare_text == "Getting ready for the drag..."
    clients[0].inbox = [{"type": "prepared", "prepare_id": prepare_id, "state": "running", "step": 3, "total": 40}]
    assert session.tick()
    assert session.prepare_text == "Getting ready for the drag: 3/40"
    clients[0].inbox = [{"type": "prepared", "prepare_id": prepare_id, "state": "ready", "step": 40, "total": 40}]
    session.tick()
    assert session.prepare_text == "Ready: the drag will start at once."
    clients[0].inbox = [dict(clients[0].welcome)]  # e.g. a restarted daemon: it has not prepared anything
    session.tick()
    assert session.prepare_text == ""
    session.prepare_when_quiet("scene", lambda: request)
    assert len(clients[0].prepared) == 2


@pytest.mark.parametrize("state, error, text", [
    ("failed", {"code": "model_error", "message": "no such model: x. Check it", "hint": "h"},
     "Could not get ready for the drag: no such model: x."),
    ("failed", None, "Could not get ready for the drag: the daemon gave no reason."),
    ("superseded", None, ""),
    ("queued", None, "Getting ready for the drag..."),
])
def test_the_text_of_each_end_of_a_prepare(state, error, text):
    session, clients, clock = session_with("ready")
    look(session, clock, make_request)
    clients[0].inbox = [{"type": "prepared", "prepare_id": clients[0].prepared[0]["prepare_id"], "state": state,
                         "error": error}]
    session.tick()
    assert session.prepare_text == text


def test_a_changed_scene_hides_the_ready_line_until_it_is_read_again():
    session, clients, clock = session_with("ready")
    look(session, clock, make_request)
    clients[0].inbox = [{"type": "prepared", "prepare_id": clients[0].prepared[0]["prepare_id"], "state": "ready"}]
    session.tick()
    assert session.prepare_text == "Ready: the drag will start at once."
    session.prepare_when_quiet("a point moved", make_request)
    assert session.prepare_text == ""     # not known yet for what the artist sees now
    clock.now += QUIET_S
    session.prepare_when_quiet("a point moved", make_request)
    assert session.prepare_text == "Ready: the drag will start at once." and len(clients[0].prepared) == 1
