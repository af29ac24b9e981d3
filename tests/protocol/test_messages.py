"""The wire schema: every message round-trips, and anything malformed is a ProtocolError, never a crash."""
from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragedit_protocol import messages
from dragedit_protocol.messages import PROTOCOL_VERSION, Limits, ProtocolError


def rgba(width: int, height: int) -> bytes:
    return bytes((x * 7 + y * 3 + c) % 256 for y in range(height) for x in range(width) for c in range(4))


def valid_submit(**changes) -> dict:
    message = messages.submit("job-1", "dragdiffusion", rgba(8, 6), 8, 6, [(1, 1, 5, 4), (2.5, 3, 7, 0)],
                              mask=bytes(range(48)), params={"drag_steps": 40, "lr": 0.01, "use_lora": True,
                                                              "tracker": "l1"},
                              model="some/model", seed=42, prompt="a cat", preview_every=5)
    message.update(changes)
    return message


def pack(message: dict) -> bytes:
    return messages.encode(message)


# ---------------------------------------------------------------------------- round trips


def test_submit_round_trip_normalises_points_and_keeps_every_field():
    decoded = messages.decode_client(pack(valid_submit()))
    assert decoded["job_id"] == "job-1" and decoded["method"] == "dragdiffusion"
    assert decoded["image"] == {"width": 8, "height": 6, "data": rgba(8, 6)}
    assert decoded["mask"] == {"width": 8, "height": 6, "data": bytes(range(48))}
    assert decoded["points"] == [((1.0, 1.0), (5.0, 4.0)), ((2.5, 3.0), (7.0, 0.0))]
    assert decoded["params"] == {"drag_steps": 40, "lr": 0.01, "use_lora": True, "tracker": "l1"}
    assert (decoded["model"], decoded["seed"], decoded["prompt"], decoded["preview_every"]) == ("some/model", 42, "a cat", 5)


def test_submit_optional_fields_get_defaults():
    message = messages.submit("j", "m", rgba(2, 2), 2, 2, [(0, 0, 1, 1)])
    decoded = messages.decode_client(pack(message))
    assert (decoded["mask"], decoded["model"], decoded["seed"], decoded["prompt"], decoded["params"]) == (None, None, None, "", {})


@pytest.mark.parametrize("message, expected", [
    (messages.hello("krita-plugin", "0.1.0", "krita", "5.1.5"),
     {"type": "hello", "client": "krita-plugin", "client_version": "0.1.0", "editor": "krita", "editor_version": "5.1.5"}),
    (messages.cancel("abc"), {"type": "cancel", "job_id": "abc"}),
    (messages.fetch("abc"), {"type": "fetch", "job_id": "abc"}),
    (messages.status_request(), {"type": "status"}),
    (messages.ping(), {"type": "ping"}),
])
def test_client_messages_round_trip(message, expected):
    assert messages.decode_client(pack(message)) == expected


def daemon_messages() -> list[dict]:
    return [
        {"type": "welcome", "daemon_version": "0.1.0", "protocol": PROTOCOL_VERSION, "instance": "i1",
         "methods": [{"name": "dragdiffusion", "params": [{"name": "lr", "type": "float", "default": 0.01}]}],
         "limits": messages.DEFAULT_LIMITS.as_dict()},
        messages.queued("j1", 3),
        messages.progress("j1", "drag", 4, 80, 12.5, False, messages.image(2, 1, bytes(6)), [(1.5, 2.0)]),
        messages.progress("j1", "load", 0, 1),
        messages.result("j1", rgba(3, 2), 3, 2, [(1.0, 1.0)], {"drag": 1.5}, 7, {"lora": True}, {"unet_forward": 9}),
        messages.error("bad_points", "the handle is outside", "move it", "j1"),
        messages.cancelled("j1"),
        messages.prepared("p1", "running", 3, 40, 2.5),
        messages.prepared("p1", "ready", 40, 40, cached={"lora": False, "inversion": True}),
        messages.prepared("p1", "failed", error={"code": "model_not_allowed", "message": "no", "hint": "use another"}),
        {"type": "status", "queued": 2, "running": None},
        messages.pong("i1"),
    ]


@pytest.mark.parametrize("message", daemon_messages(), ids=lambda m: m["type"])
def test_daemon_messages_round_trip(message):
    assert messages.decode_daemon(pack(message)) == {**message, "v": PROTOCOL_VERSION}


def test_daemon_result_with_wrong_byte_count_is_rejected_by_the_client_side():
    message = messages.result("j1", bytes(5), 3, 2, [], {}, 1, {})
    with pytest.raises(ProtocolError) as err:
        messages.decode_daemon(pack(message))
    assert err.value.code == "bad_image"


def test_error_reply_built_from_a_protocol_error_is_a_valid_daemon_message():
    with pytest.raises(ProtocolError) as err:
        messages.decode_client(pack(valid_submit(points=[])))
    reply = messages.decode_daemon(pack(messages.from_exception(err.value)))
    assert reply["type"] == "error" and reply["code"] == "no_points" and reply["job_id"] == "job-1"
    assert reply["hint"]


# ---------------------------------------------------------------------------- specific bad input


def code_of(data: bytes, limits: Limits = messages.DEFAULT_LIMITS) -> str:
    with pytest.raises(ProtocolError) as err:
        messages.decode_client(data, limits)
    assert err.value.message, "every error has a sentence"
    return err.value.code


@pytest.mark.parametrize("changes, code", [
    ({"points": [[1, 1, math.nan, 2]]}, "bad_field"),
    ({"points": [[1, 1, math.inf, 2]]}, "bad_field"),
    ({"points": [[1, 1, 8, 2]]}, "point_outside"),  # x = width is outside (pixels 0..7)
    ({"points": [[-0.5, 1, 3, 2]]}, "point_outside"),
    ({"points": [[1, 1, 1, 1]]}, "bad_points"),
    ({"points": [[1, 1, 2]]}, "bad_points"),
    ({"points": [[1, 1, 2, "3"]]}, "bad_field"),
    ({"points": [[1, 1, 2, True]]}, "bad_field"),
    ({"points": []}, "no_points"),
    ({"points": [[1, 1, 2, 2]] * 65}, "too_many_points"),
    ({"image": {"width": -8, "height": 6, "data": rgba(8, 6)}}, "bad_field"),
    ({"image": {"width": 8, "height": 6, "data": rgba(8, 5)}}, "bad_image"),
    ({"image": {"width": 16384, "height": 16384, "data": b""}}, "too_large"),
    ({"image": {"width": 8.0, "height": 6, "data": rgba(8, 6)}}, "bad_field"),
    ({"image": {"width": 8, "height": 6, "data": "text"}}, "bad_field"),
    ({"mask": {"width": 8, "height": 6, "data": bytes(40)}}, "bad_image"),
    ({"mask": {"width": 4, "height": 12, "data": bytes(48)}}, "bad_mask"),
    ({"params": {"lr": math.nan}}, "bad_param"),
    ({"params": {"lr": [1, 2]}}, "bad_param"),
    ({"params": {"x" * 65: 1}}, "bad_field"),
    ({"seed": -1}, "bad_field"),
    ({"seed": 1.5}, "bad_field"),
    ({"preview_every": 10**6}, "bad_field"),
    ({"method": 3}, "bad_field"),
    ({"method": "m" * 65}, "bad_field"),
    ({"prompt": "p" * 5000}, "bad_field"),
    ({"job_id": "../../etc/passwd"}, "bad_field"),
    ({"job_id": ".hidden"}, "bad_field"),
    ({"job_id": "é"}, "bad_field"),
    ({"job_id": ""}, "bad_field"),
    ({"job_id": "j" * 129}, "bad_field"),
    ({"vae": "sd-vae\x00/../x"}, "bad_field"),
    ({"vae": 7}, "bad_field"),
])
def test_bad_submit_fields_have_their_own_error_code(changes, code):
    assert code_of(pack(valid_submit(**changes))) == code


def test_missing_required_fields_are_named():
    for field in ("job_id", "method", "image", "points"):
        message = valid_submit()
        del message[field]
        with pytest.raises(ProtocolError) as err:
            messages.decode_client(pack(message))
        assert field in err.value.message


def test_an_image_over_the_daemons_limit_is_refused_before_its_bytes_are_read():
    limits = Limits(max_image_pixels=40)
    assert code_of(pack(valid_submit()), limits) == "too_large"  # 8 x 6 = 48 pixels


def test_a_message_over_the_byte_limit_is_refused_before_unpacking():
    assert code_of(pack(valid_submit()), Limits(max_message_bytes=100)) == "too_large"


def test_version_mismatch_tells_the_user_to_update():
    with pytest.raises(ProtocolError) as err:
        messages.decode_client(pack({**messages.ping(), "v": PROTOCOL_VERSION + 1}))
    assert err.value.code == "version_mismatch" and "install.py" in err.value.hint


@pytest.mark.parametrize("data", [
    b"",
    b"\xc1",  # never used byte
    msgpack.packb([1, 2, 3]),
    msgpack.packb({"type": "ping"}),  # no version
    msgpack.packb({"v": True, "type": "ping"}),
    msgpack.packb({"v": 1, "type": "launch_missiles"}),
    msgpack.packb({"v": 1, "type": ["ping"]}),
    msgpack.packb({1: 2}),  # non-string key
    msgpack.packb({"v": 1, "type": "ping", "x": msgpack.ExtType(1, b"boom")}),
    msgpack.packb({"v": 1, "type": "ping", "x": list(range(100_000))}),  # array over the unpack limit
    msgpack.packb({"v": 1, "type": "ping", "x": "s" * 100_000}),
    b"\x91" * 100_000 + b"\xc0",  # nesting bomb
    b"\xdd\xff\xff\xff\xff",  # array header of 4 billion items, no body
    b"\xc6\x3f\xff\xff\xff",  # bin header of 1 GB, no body
    msgpack.packb({"v": 1, "type": "ping"}) + b"\x00",  # trailing bytes
    "text, not bytes",
])
def test_malformed_envelopes(data):
    with pytest.raises(ProtocolError):
        messages.decode_client(data)


# ---------------------------------------------------------------------------- properties

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=10)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats() | st.text(max_size=3)


def assert_only_protocol_errors(data) -> None:
    """decode_client either accepts (and then the invariants hold) or raises ProtocolError."""
    try:
        decoded = messages.decode_client(data)
    except ProtocolError as err:
        assert isinstance(err.code, str) and err.code and err.message
        messages.encode(messages.from_exception(err))  # the reply can always be sent
        return
    assert decoded["type"] in messages.CLIENT_TYPES
    if decoded["type"] == "submit":
        image = decoded["image"]
        assert len(image["data"]) == image["width"] * image["height"] * 4
        for (hx, hy), (tx, ty) in decoded["points"]:
            assert all(math.isfinite(v) for v in (hx, hy, tx, ty))
            assert 0 <= min(hx, tx) and max(hx, tx) <= image["width"] - 1
            assert 0 <= min(hy, ty) and max(hy, ty) <= image["height"] - 1


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_give_protocol_errors_only(data):
    assert_only_protocol_errors(data)


@FAST
@given(st.sampled_from([valid_submit(), messages.hello("c", "1"), messages.cancel("x"), messages.fetch("x"),
                        messages.ping(), messages.status_request()]),
       st.data())
def test_truncated_messages_give_protocol_errors_only(message, data):
    packed = pack(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    with pytest.raises(ProtocolError):
        messages.decode_client(packed[:cut])


SUBMIT_FIELDS = list(valid_submit()) + ["v", "type"]
IMAGE_FIELDS = ["width", "height", "data"]


@FAST
@given(st.sampled_from(SUBMIT_FIELDS), values)
def test_any_value_in_any_submit_field(field, value):
    assert_only_protocol_errors(pack(valid_submit(**{field: value})))


@FAST
@given(st.sampled_from(["image", "mask"]), st.sampled_from(IMAGE_FIELDS), values)
def test_any_value_in_any_image_field(which, field, value):
    message = valid_submit()
    message[which] = {**message[which], field: value}
    assert_only_protocol_errors(pack(message))


@FAST
@given(st.lists(st.lists(scalars, max_size=6) | scalars, max_size=70))
def test_any_points_list(points):
    assert_only_protocol_errors(pack(valid_submit(points=points)))


@FAST
@given(st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=-(2**40), max_value=2**40))
def test_declared_sizes_never_allocate(width, height):
    # a tiny payload declaring any size, up to a terabyte of pixels: refused by arithmetic, never allocated
    message = valid_submit(image={"width": width, "height": height, "data": b"\x00" * 16}, mask=None)
    assert_only_protocol_errors(pack(message))


@FAST
@given(st.binary(min_size=1, max_size=40), st.data())
def test_mutated_valid_messages(noise, data):
    packed = bytearray(pack(valid_submit()))
    at = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    packed[at:at + len(noise)] = noise
    assert_only_protocol_errors(bytes(packed))


def test_a_job_may_name_its_own_vae():
    from dragedit_protocol.messages import submit

    message = submit("j1", "dragdiffusion", rgba(8, 6), 8, 6, [(1, 1, 5, 4)], vae="stabilityai/sd-vae-ft-mse")
    assert message["vae"] == "stabilityai/sd-vae-ft-mse"
    assert messages.validate_client({**message, "v": PROTOCOL_VERSION})["vae"] == "stabilityai/sd-vae-ft-mse"
    assert messages.validate_client({**valid_submit(), "v": PROTOCOL_VERSION})["vae"] is None  # the daemon's own


def valid_prepare(**changes) -> dict:
    message = messages.prepare("prep-1", rgba(8, 6), 8, 6, mask=bytes(range(48)), method="gooddrag",
                               params={"lora_steps": 20}, model="some/model", prompt="a cat")
    message.update(changes)
    return message


def test_prepare_round_trip_keeps_every_field_and_may_name_no_method():
    decoded = messages.decode_client(pack(valid_prepare()))
    assert decoded == {"type": "prepare", "prepare_id": "prep-1", "method": "gooddrag", "params": {"lora_steps": 20},
                       "model": "some/model", "vae": None, "prompt": "a cat",
                       "image": {"width": 8, "height": 6, "data": rgba(8, 6)},
                       "mask": {"width": 8, "height": 6, "data": bytes(range(48))}}
    every_method = messages.decode_client(pack(messages.prepare("p2", rgba(2, 2), 2, 2)))
    assert (every_method["method"], every_method["mask"], every_method["params"]) == (None, None, {})


@pytest.mark.parametrize("changes, code", [
    ({"prepare_id": "../x"}, "bad_field"),
    ({"mask": {"width": 3, "height": 6, "data": bytes(18)}}, "bad_mask"),
    ({"image": {"width": 8, "height": 6, "data": bytes(5)}}, "bad_image"),
    ({"params": {"lr": float("nan")}}, "bad_param"),
])
def test_bad_prepare_fields_have_their_own_error_code_and_name_the_prepare(changes, code):
    with pytest.raises(ProtocolError) as err:
        messages.decode_client(pack(valid_prepare(**changes)))
    assert err.value.code == code
    if "prepare_id" not in changes:
        assert err.value.job_id == "prep-1"


def test_a_large_prepare_is_accepted_as_a_message_carrying_an_image():
    big = messages.prepare("p3", bytes(200 * 100 * 4), 200, 100)
    assert len(pack(big)) > messages.MAX_SMALL_MESSAGE
    assert messages.decode_client(pack(big))["image"]["width"] == 200


def test_a_prepared_message_with_an_unknown_state_is_refused_by_the_client_side():
    with pytest.raises(ProtocolError):
        messages.decode_daemon(pack(messages.prepared("p1", "half-done")))


@FAST
@given(st.sampled_from(list(valid_prepare()) + ["v", "type"]), values)
def test_any_value_in_any_prepare_field(field, value):
    assert_only_protocol_errors(pack(valid_prepare(**{field: value})))


LOADING = {"bytes_done": 400_000_000, "bytes_total": 4_270_000_000, "eta_s": 20.5, "file": "vae/x.safetensors"}


@pytest.mark.parametrize("kind", ["welcome", "status"])
def test_the_download_progress_of_welcome_and_status_is_kept_when_valid_and_dropped_when_not(kind):
    decoded = messages.decode_daemon(messages.encode({"type": kind, "state": "loading model", "loading": LOADING}))
    assert decoded["loading"] == LOADING
    for bad in ({**LOADING, "bytes_done": -1}, {**LOADING, "eta_s": "soon"}, {**LOADING, "bytes_total": 1.5}, [1, 2]):
        decoded = messages.decode_daemon(messages.encode({"type": kind, "state": "loading model", "loading": bad}))
        assert decoded["state"] == "loading model" and decoded["loading"] is None  # the rest still counts


@pytest.mark.parametrize("loading, words", [
    (LOADING, "0.4 of 4.3 GB, less than a minute left"),
    ({**LOADING, "bytes_total": 900_000_000, "eta_s": None}, "400 of 900 MB"),
    ({**LOADING, "eta_s": 170}, "0.4 of 4.3 GB, about 3 min left"),
    ({**LOADING, "eta_s": 3 * 3600}, "0.4 of 4.3 GB, about 3.0 h left"),
    ({**LOADING, "bytes_total": None, "eta_s": None}, "400 MB so far"),
])
def test_download_words(loading, words):
    assert messages.download_words(loading) == words
