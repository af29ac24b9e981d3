"""A scripted stand-in for dragedit_protocol.client.DaemonClient (same public surface)."""
from __future__ import annotations

WELCOME = {
    "type": "welcome",
    "daemon_version": "0.1.0",
    "device": "cpu",
    "model": "tiny-test-model",
    "methods": [
        {"name": "dragdiffusion", "title": "DragDiffusion", "description": "Latent optimisation.",
         "params": [
             {"name": "drag_steps", "type": "int", "default": 80, "min": 1, "max": 500,
              "description": "Motion supervision steps.", "advanced": False},
             {"name": "lr", "type": "float", "default": 0.01, "min": 0.0001, "max": 1.0,
              "description": "Learning rate.", "advanced": True},
             {"name": "use_lora", "type": "bool", "default": True, "description": "Fine-tune first."},
         ]},
        {"name": "goodrag", "title": "GoodDrag", "description": "Alternating drag and denoise.",
         "params": [{"name": "tracker", "type": "choice", "default": "l1", "choices": ["l1", "l2"],
                     "description": "Point tracking distance."}]},
    ],
}


class FakeClient:
    """Holds a state the test sets; records what the session sends; returns queued messages on poll."""

    instances: list["FakeClient"] = []

    def __init__(self, endpoint: str, state: str = "connecting"):
        self.endpoint = endpoint
        self.state = state
        self.welcome = WELCOME if state == "ready" else None
        self.error_text = ""
        self.inbox: list[dict] = []
        self.submitted: list[dict] = []
        self.prepared: list[dict] = []
        self.cancelled: list[str] = []
        self.closed = False
        FakeClient.instances.append(self)

    def become_ready(self) -> None:
        self.state, self.welcome = "ready", WELCOME

    def poll(self, timeout_ms: int = 0) -> list[dict]:
        out, self.inbox = self.inbox, []
        return out

    def submit(self, method, rgba, width, height, points, mask=None, params=None, model=None, seed=None,
               prompt="", preview_every=0, job_id=None, vae=None) -> str:
        assert self.state == "ready", "submit before the daemon is ready"
        self.submitted.append(dict(method=method, rgba=rgba, width=width, height=height, points=points, mask=mask,
                                   params=params, model=model, seed=seed, prompt=prompt,
                                   preview_every=preview_every, job_id=job_id, vae=vae))
        return job_id

    def prepare(self, rgba, width, height, mask=None, method=None, params=None, model=None, prompt="",
                vae=None) -> str:
        assert self.state == "ready", "prepare before the daemon is ready"
        self.prepared.append(dict(rgba=rgba, width=width, height=height, mask=mask, method=method, params=params,
                                  model=model, prompt=prompt, vae=vae, prepare_id=f"prepare-{len(self.prepared) + 1}"))
        return self.prepared[-1]["prepare_id"]

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def close(self) -> None:
        self.closed = True
