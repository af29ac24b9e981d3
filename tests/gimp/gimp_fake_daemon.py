"""A scripted daemon client for the GIMP layer's tests: same surface as DaemonClient, answers at once.

On submit it plays queued -> progress -> result (the sent region with its colours inverted),
one message per poll, or an error, or keeps running until cancelled. On prepare it plays
running -> ready, or failed with ``prepare_error``.
"""
from __future__ import annotations

WELCOME = {
    "type": "welcome", "protocol": 1, "device": "cpu", "model": "tiny-test-model",
    "methods": [
        {"name": "dragdiffusion", "title": "DragDiffusion", "description": "Optimises the latent.",
         "params": [
             {"name": "n_steps", "type": "int", "default": 40, "min": 1, "max": 200,
              "description": "Drag iterations.", "advanced": False},
             {"name": "lr", "type": "float", "default": 0.01, "min": 0.0001, "max": 1.0,
              "description": "Learning rate.", "advanced": True},
             {"name": "use_lora", "type": "bool", "default": True, "description": "Fine-tune first.",
              "advanced": True},
         ]},
        {"name": "gooddrag", "title": "GoodDrag", "description": "Alternates drag and denoise.",
         "params": [{"name": "tracker", "type": "choice", "default": "l1", "choices": ["l1", "l2"],
                     "description": "Point tracking distance.", "advanced": False}]},
    ],
}


def inverted(rgba: bytes) -> bytes:
    """RGB inverted, alpha kept: an 'edit' every pixel of which differs from a mid-grey source."""
    out = bytearray(rgba)
    for c in range(3):
        out[c::4] = bytes(255 - v for v in rgba[c::4])
    return bytes(out)


class FakeDaemonClient:
    """``behaviour``: 'edit' (result), 'error' (error with ``error`` fields), 'hold' (runs until cancelled)."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:1", state: str = "ready", behaviour: str = "edit",
                 error: dict | None = None, error_text: str = "", prepare_error: dict | None = None):
        self.endpoint = endpoint
        self.state = state
        self.welcome = WELCOME if state == "ready" else None
        self.error_text = error_text
        self.behaviour = behaviour
        self.error = error or {"code": "out_of_memory", "message": "CUDA out of memory", "hint": ""}
        self.submitted: list[dict] = []
        self.prepared: list[dict] = []
        self.prepare_error = prepare_error
        self.cancelled: list[str] = []
        self.closed = False
        self.polls = 0
        self._script: list[dict] = []

    def poll(self, timeout_ms: int = 0) -> list[dict]:
        self.polls += 1
        return [self._script.pop(0)] if self._script else []

    def submit(self, method, rgba, width, height, points, mask=None, params=None, model=None, seed=None,
               prompt="", preview_every=0, job_id=None, vae=None) -> str:
        assert self.state == "ready", "submitted before the daemon was ready"
        assert len(rgba) == width * height * 4 and (mask is None or len(mask) == width * height)
        self.submitted.append(dict(method=method, rgba=rgba, width=width, height=height, points=points,
                                   mask=mask, params=params, model=model, seed=seed, prompt=prompt,
                                   preview_every=preview_every, job_id=job_id, vae=vae))
        job = {"job_id": job_id}
        # a 4 x 2 RGB preview when asked for one: step 1's all grey, step 2's all white
        preview = ({step: {"width": 4, "height": 2, "data": bytes([value]) * 24}
                    for step, value in ((1, 128), (2, 255))} if preview_every else {})
        self._script = [{"type": "queued", "position": 0, **job},
                        {"type": "progress", "phase": "drag", "step": 1, "total": 2, "eta_s": 3.0,
                         "preview": preview.get(1), **job}]
        if self.behaviour == "edit":
            self._script += [
                {"type": "progress", "phase": "drag", "step": 2, "total": 2, "eta_s": 1.0,
                 "preview": preview.get(2), **job},
                {"type": "result", "image": {"width": width, "height": height, "data": inverted(rgba)},
                 "handles": [p[2:] for p in points], "timings": {"drag": 0.1}, "seed": seed or 1234,
                 "cache_hits": {}, **job}]
        elif self.behaviour == "error":
            self._script.append({"type": "error", **self.error, **job})
        return job_id

    def prepare(self, rgba, width, height, mask=None, method=None, params=None, model=None, prompt="",
                vae=None) -> str:
        assert self.state == "ready", "prepared before the daemon was ready"
        prepare_id = f"prepare-{len(self.prepared) + 1}"
        self.prepared.append(dict(rgba=rgba, width=width, height=height, mask=mask, method=method, params=params,
                                  model=model, prompt=prompt, vae=vae, prepare_id=prepare_id))
        prepared = {"type": "prepared", "prepare_id": prepare_id, "cached": {}}
        self._script += [{**prepared, "state": "running", "step": 3, "total": 8, "eta_s": 5.0, "error": None}]
        if self.prepare_error:
            self._script.append({**prepared, "state": "failed", "step": 3, "total": 8, "error": self.prepare_error})
        else:
            self._script.append({**prepared, "state": "ready", "step": 8, "total": 8, "error": None})
        return prepare_id

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self._script = [{"type": "cancelled", "job_id": job_id}]

    def close(self) -> None:
        self.closed = True
