"""A job's state and status line as daemon messages arrive."""
import pytest

from dragedit_protocol.editor.errors import error_text
from dragedit_protocol.editor.jobs import JobState, format_eta


def test_a_job_moves_through_queue_progress_and_result():
    job = JobState("j1", status="submitted")
    assert job.apply({"type": "queued", "job_id": "j1", "position": 2})
    assert job.status_text() == "Queued: 1 job ahead"
    job.apply({"type": "queued", "job_id": "j1", "position": 1})
    assert job.status_text() == "Queued: runs next"
    job.apply({"type": "queued", "job_id": "j1", "position": 3})
    assert job.status_text() == "Queued: 2 jobs ahead"
    job.apply({"type": "queued", "job_id": "j1", "position": 0})
    assert job.status_text() == "Starting..."
    preview = {"width": 2, "height": 1, "data": b"\x01\x02\x03\x04\x05\x06"}
    assert job.apply({"type": "progress", "job_id": "j1", "phase": "drag", "step": 20, "total": 80, "eta_s": 125,
                      "cached": False, "preview": preview, "handles": [[3.0, 4.0]]})
    assert job.status == "running" and job.fraction == 0.25
    assert job.status_text() == "Dragging 20/80, about 2 min 5 s left"
    assert job.preview.rgb == b"\x01\x02\x03\x04\x05\x06" and job.preview.handles == [(3.0, 4.0)]
    assert job.apply({"type": "progress", "job_id": "j1", "phase": "lora", "step": 80, "total": 80,
                      "eta_s": None, "cached": True, "preview": None, "handles": None})
    assert job.status_text() == "Fine-tuning on the image 80/80 (cached)"
    assert job.preview is not None  # the last preview stays until a new one comes
    result = {"type": "result", "job_id": "j1", "image": {"width": 1, "height": 1, "data": b"\0\0\0\0"},
              "handles": [[9.0, 9.0]], "seed": 5}
    assert job.apply(result)
    assert job.finished and job.status == "done" and job.result is result and job.fraction == 1.0
    assert not job.apply({"type": "progress", "job_id": "j1", "phase": "drag", "step": 1, "total": 2})


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
