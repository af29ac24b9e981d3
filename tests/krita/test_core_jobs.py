"""A job's state and status line as daemon messages arrive."""
import pytest

from dragedit_protocol.editor.errors import error_text
from dragedit_protocol.editor.jobs import JobState, format_eta


def test_a_job_moves_through_queue_progress_and_result():
    job = JobState("j1", status="submitted")
    assert job.apply({"type": "queued", "job_id": "j1", "position": 2})
    assert job.status_text() == "Queued behind 1 other drag"
    job.apply({"type": "queued", "job_id": "j1", "position": 1})
    assert job.status_text() == "Queued: runs next"
    job.apply({"type": "queued", "job_id": "j1", "position": 3})
    assert job.status_text() == "Queued behind 2 other drags"
    job.apply({"type": "queued", "job_id": "j1", "position": 0})
    assert job.status_text().startswith("Starting (the daemon loads the model")
    preview = {"width": 2, "height": 1, "data": b"\x01\x02\x03\x04\x05\x06"}
    assert job.apply({"type": "progress", "job_id": "j1", "phase": "lora", "step": 80, "total": 80,
                      "eta_s": None, "cached": True, "preview": None, "handles": None}, now=100.0)
    assert job.status_text(now=100.0) == "Fine-tuning on the image 80/80 (cached)"  # no time left from a cache hit
    job.apply({"type": "progress", "job_id": "j1", "phase": "drag", "step": 0, "total": 80}, now=100.0)
    assert job.apply({"type": "progress", "job_id": "j1", "phase": "drag", "step": 20, "total": 80, "eta_s": 125,
                      "cached": False, "preview": preview, "handles": [[3.0, 4.0]]}, now=160.0)
    assert job.status == "running" and job.phase_fraction == 0.25
    assert job.fraction == pytest.approx(0.35 + 0.15 + 0.35 * 0.25)  # the whole job: LoRA and inversion are done
    # 60 s for 8.75 % of the job, 41.25 % left: about 4 min 43 s for the whole job, not the drag's own 125 s
    assert job.status_text(now=160.0) == "Dragging 20/80, about 4 min 43 s left"
    assert job.preview.rgb == b"\x01\x02\x03\x04\x05\x06" and job.preview.handles == [(3.0, 4.0)]
    assert job.apply({"type": "progress", "job_id": "j1", "phase": "denoise", "step": 5, "total": 35, "eta_s": 9,
                      "cached": False, "preview": None, "handles": None}, now=170.0)
    assert job.status_text(now=170.0) == "Denoising 5/35, about 9 s left"  # the last phase: the daemon's figure
    assert job.preview is not None  # the last preview stays until a new one comes
    result = {"type": "result", "job_id": "j1", "image": {"width": 1, "height": 1, "data": b"\0\0\0\0"},
              "handles": [[9.0, 9.0]], "seed": 5}
    assert job.apply(result)
    assert job.finished and job.status == "done" and job.result is result and job.fraction == 1.0
    assert not job.apply({"type": "progress", "job_id": "j1", "phase": "drag", "step": 1, "total": 2})


@pytest.mark.parametrize("hits, words", [
    ({"lora": True, "inversion": True}, "It took 8 s (fine-tuning and inversion were ready ahead)."),
    ({"lora": False, "inversion": True}, "It took 8 s (the inversion was ready ahead)."),
    ({"lora": False, "inversion": False}, "It took 8 s."),
])
def test_the_finished_job_says_how_long_it_took_and_what_was_ready_ahead(hits, words):
    job = JobState("j1", status="running")
    job.apply({"type": "result", "job_id": "j1", "image": {"width": 1, "height": 1, "data": bytes(4)},
               "handles": [], "seed": 1, "cache_hits": hits,
               "timings": {"lora": 0.0, "inversion": 0.0, "drag": 5.2, "denoise": 2.6, "total": 7.8}})
    assert job.result_summary() == words and job.status_text() == "Done. " + words


def test_the_bar_only_moves_forward_through_the_phases():
    job = JobState("j", status="submitted")
    seen = []
    for phase, total in (("lora", 4), ("inversion", 3), ("drag", 5), ("denoise", 3)):
        for step in range(1, total + 1):
            job.apply({"type": "progress", "job_id": "j", "phase": phase, "step": step, "total": total}, now=1.0)
            seen.append(job.fraction)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    job = JobState("k", status="submitted")
    job.apply({"type": "progress", "job_id": "k", "phase": "lora", "step": 0, "total": 10}, now=0.0)
    job.apply({"type": "progress", "job_id": "k", "phase": "lora", "step": 5, "total": 10}, now=35.0)
    assert job.time_left_s(now=35.0) == pytest.approx(35.0 * (1 - 0.175) / 0.175)


def test_messages_of_other_jobs_are_ignored():
    job = JobState("mine", status="submitted")
    assert not job.apply({"type": "result", "job_id": "theirs"})
    assert not job.apply({"type": "status", "queue": []})
    assert job.status == "submitted"


def test_errors_become_sentences_that_say_what_to_do():
    job = JobState("j", status="running")
    job.apply({"type": "error", "job_id": "j", "code": "out_of_memory", "message": "CUDA out of memory", "hint": ""})
    assert job.status == "failed"
    assert job.status_text().startswith("The daemon ran out of memory")
    assert "Select a smaller region" in job.status_text()
    assert error_text("point_outside", "the handle of point pair 1 (3.0, 4.0) is outside the 2x2 image",
                      "move the point inside the layer") == \
        "The handle of point pair 1 (3.0, 4.0) is outside the 2x2 image. Move the point inside the layer."


def test_cancel_states():
    job = JobState("j", status="running")
    job.status = "cancelling"
    job.apply({"type": "progress", "job_id": "j", "phase": "drag", "step": 3, "total": 10})
    assert job.status == "cancelling" and job.status_text().startswith("Cancelling...")
    job.apply({"type": "cancelled", "job_id": "j"})
    assert job.finished and job.status_text() == "Cancelled."


@pytest.mark.parametrize("seconds,text", [(None, ""), (0.2, "about 1 s"), (45, "about 45 s"), (120, "about 2 min"),
                                          (3725, "about 1 h 2 min")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text
