"""While the daemon's hub model downloads, welcome and status carry its progress (a fake download
into a fake Hugging Face cache; no network), and the editor core words it."""
from __future__ import annotations

import threading
from pathlib import Path

import huggingface_hub.constants

from daemon_support import pump, ready
from dragedit.engine import download
from dragedit.engine.api import EngineSettings
from dragedit.engine.download import HubFile
from dragedit_protocol.editor.session import DragSession
from engine_double import EngineDouble

MODEL = "fake-org/fake-model"
UNET = HubFile("unet/diffusion_pytorch_model.safetensors", 4_300_000_000, "e7a9")


class DownloadingEngine(EngineDouble):
    """Its model load writes 1.2 GB of the UNet into the cache (a sparse file), then waits for ``go``."""

    def __init__(self, settings: EngineSettings, blobs: Path, go: threading.Event):
        super().__init__(settings)
        self.blobs, self.go = blobs, go

    def ensure_model(self, source: str | None = None, on_progress=None) -> None:
        self.blobs.mkdir(parents=True)
        part = self.blobs / f"{UNET.blob}.5eed1e55.incomplete"
        with part.open("wb") as file:
            file.truncate(1_200_000_000)
        assert self.go.wait(60), "the test never saw the download"
        with part.open("r+b") as file:
            file.truncate(UNET.size)
        part.rename(self.blobs / UNET.blob)


def test_welcome_and_status_carry_the_download_until_the_model_is_ready(start_daemon, connect, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(download, "hub_files", lambda repo_id: [UNET] if repo_id == MODEL else [])
    blobs = tmp_path / "hub" / "models--fake-org--fake-model" / "blobs"
    go = threading.Event()
    daemon = start_daemon(lambda settings: DownloadingEngine(settings, blobs, go),
                          settings=EngineSettings(model=MODEL, device="cpu"))
    client = connect(daemon.bound_endpoint)
    try:
        pump([client], lambda _: client.state == "ready" and client.welcome.get("loading") is not None)
        welcome = client.welcome
        assert welcome["state"] == "loading model" and welcome["model"] == MODEL
        assert welcome["loading"] == {"bytes_done": 1_200_000_000, "bytes_total": 4_300_000_000, "eta_s": None,
                                      "file": UNET.path}
        assert DragSession(daemon.bound_endpoint, lambda endpoint: client).daemon_text == (
            f"Downloading the model {MODEL}: 1.2 of 4.3 GB.")

        client.request_status()
        seen = pump([client], lambda seen: any(m["type"] == "status" for m in seen))
        status = next(m for m in seen if m["type"] == "status")
        assert status["state"] == "loading model" and status["loading"]["bytes_done"] == 1_200_000_000
    finally:
        go.set()
    welcome = ready(client)
    assert welcome["loading"] is None and [m["name"] for m in welcome["methods"]] == ["double"]
