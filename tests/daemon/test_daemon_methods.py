"""Every method end to end through the daemon over loopback, with a mask, on the tiny model:
the result has the input's size, pixels outside the mask are unchanged, inside changed, and a
second drag of the same image reports the LoRA and inversion phases as cache hits."""
from __future__ import annotations

import numpy as np
import pytest

from daemon_support import engine_daemon_in_thread, final, photo, pump, ready
from dragedit.engine import Engine
from dragedit.engine.images import blend_weights
from dragedit.methods import METHODS
from tests.method_params import FAST_PARAMS, same_edit


@pytest.fixture(scope="module")
def daemon(tiny_model_dir, tmp_path_factory):
    with engine_daemon_in_thread(tiny_model_dir, tmp_path_factory.mktemp("methods-home"), Engine) as daemon:
        yield daemon


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_through_the_daemon(daemon, connect, method):
    client = connect(daemon.bound_endpoint, timeout_s=30.0, data_folder=daemon.options.paths.root)
    ready(client, timeout_s=120)
    rgba = photo(72, 56, seed=sorted(METHODS).index(method))  # own image: a RecLoRA is shared across methods
    mask = np.zeros((56, 72), np.uint8)
    mask[12:44, 16:60] = 255
    outcomes = []
    for _ in range(2):
        job_id = client.submit(method, rgba.tobytes(), 72, 56, [(30, 26, 44, 30)], mask=mask.tobytes(),
                               params=FAST_PARAMS[method], seed=3)
        seen = pump([client], lambda messages: final(messages, job_id) is not None, timeout_s=600)
        result = final(seen, job_id)
        assert result["type"] == "result", result
        assert {m["phase"] for m in seen if m["type"] == "progress"} >= {"drag", "denoise"}
        outcomes.append(result)
    first, second = outcomes
    out = np.frombuffer(first["image"]["data"], np.uint8).reshape(56, 72, 4)
    assert (first["image"]["width"], first["image"]["height"]) == (72, 56)
    untouched = blend_weights(mask > 127, METHODS[method].SPEC.resolve({})["feather"]) == 0
    assert np.array_equal(out[untouched], rgba[untouched])
    assert (out[mask > 127] != rgba[mask > 127]).mean() > 0.5
    assert first["cache_hits"] == {"lora": False, "inversion": False}
    assert second["cache_hits"] == {"lora": True, "inversion": True}
    again = np.frombuffer(second["image"]["data"], np.uint8).reshape(56, 72, 4)
    assert same_edit(again, out)  # deterministic for a seed, cached or not
