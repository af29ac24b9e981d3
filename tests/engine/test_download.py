"""A hub model's download progress, measured from a fake Hugging Face cache folder (no network)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

from dragedit.engine import download
from dragedit.engine.download import DownloadMeter, DownloadWatcher, HubFile, files_to_fetch

UNET = HubFile("unet/diffusion_pytorch_model.safetensors", 3000, "aaa")
VAE = HubFile("vae/diffusion_pytorch_model.safetensors", 1000, "bbb")


def lfs(path: str, size: int, sha: str) -> RepoSibling:
    return RepoSibling(path, size=size, blob_id="git" + sha, lfs=BlobLfsInfo(size=size, sha256=sha, pointer_size=130))


def test_the_files_counted_are_those_a_safetensors_pipeline_load_fetches():
    siblings = [
        RepoSibling("model_index.json", size=600, blob_id="idx"),
        RepoSibling("unet/config.json", size=900, blob_id="cfg"),
        lfs("unet/diffusion_pytorch_model.safetensors", 3_400_000_000, "unet"),
        lfs("unet/diffusion_pytorch_model.fp16.safetensors", 1_700_000_000, "unet16"),  # a variant
        lfs("unet/diffusion_pytorch_model.non_ema.safetensors", 3_400_000_000, "unetema"),  # a variant
        lfs("unet/diffusion_pytorch_model.bin", 3_400_000_000, "unetbin"),  # pickled weights: never
        lfs("safety_checker/model.safetensors", 1_200_000_000, "safety"),  # not loaded
        lfs("v1-5-pruned.safetensors", 4_200_000_000, "root"),  # a single-file copy at the root
        RepoSibling("README.md", size=10, blob_id="readme"),
        lfs("text_encoder/model.safetensors", 490_000_000, "text"),
        RepoSibling("vae/config.json", size=None, blob_id="nosize"),  # listed without metadata
    ]
    assert files_to_fetch(siblings) == [
        HubFile("model_index.json", 600, "idx"),
        HubFile("unet/config.json", 900, "cfg"),
        HubFile("unet/diffusion_pytorch_model.safetensors", 3_400_000_000, "unet"),
        HubFile("text_encoder/model.safetensors", 490_000_000, "text"),
    ]


def test_progress_counts_new_blobs_and_the_rate_gives_the_time_left(tmp_path: Path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "bbb").write_bytes(b"v" * 1000)  # the VAE is in the cache already
    (blobs / "old.1a2b3c4d.incomplete").write_bytes(b"x" * 500)  # left over by an earlier, killed download
    meter = DownloadMeter(blobs)
    meter.expect([UNET, VAE])
    assert meter.sample(0.0) is None  # nothing is downloading yet

    part = blobs / "aaa.0f0f0f0f.incomplete"
    part.write_bytes(b"u" * 100)
    first = meter.sample(10.0)
    assert first is not None and (first.bytes_done, first.bytes_total) == (100, 3000)
    assert first.file == UNET.path and first.eta_s is None  # one look: no rate yet
    part.write_bytes(b"u" * 300)
    second = meter.sample(12.0)  # 200 bytes in 2 s: 2700 bytes left take 27 s
    assert (second.bytes_done, second.bytes_total, second.eta_s) == (300, 3000, 27.0)

    part.rename(blobs / "aaa")
    part.with_name("aaa").write_bytes(b"u" * 3000)
    assert meter.sample(14.0) is None  # all there: the loader reads the files now


def test_without_the_hubs_listing_the_total_is_unknown_and_no_time_is_promised(tmp_path: Path):
    meter = DownloadMeter(tmp_path / "blobs")  # the folder does not exist yet
    meter.expect(None)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "ccc.12345678.incomplete").write_bytes(b"c" * 40)
    meter.sample(0.0)
    (tmp_path / "blobs" / "ccc.12345678.incomplete").write_bytes(b"c" * 80)
    progress = meter.sample(1.0)
    assert progress.as_dict() == {"bytes_done": 80, "bytes_total": None, "eta_s": None, "file": None}


class Reports:
    """Collects a watcher's reports; ``wait_for`` blocks until one matches (or fails the test)."""

    def __init__(self):
        self.seen: list[dict | None] = []
        self._changed = threading.Condition()

    def __call__(self, report: dict | None) -> None:
        with self._changed:
            self.seen.append(report)
            self._changed.notify_all()

    def wait_for(self, condition) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(condition(r) for r in self.seen), timeout=30), self.seen


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dragedit-download-watcher"]


def test_the_watcher_reports_a_growing_download_then_its_end_and_stops(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(download, "hub_files", lambda repo_id: [UNET] if repo_id == "org/model" else [])
    blobs = tmp_path / "blobs"
    reports = Reports()
    with DownloadWatcher("org/model", reports, blobs=blobs, interval_s=0.01):
        blobs.mkdir()
        part = blobs / "aaa.deadbeef.incomplete"
        for size in (1000, 3000):  # a writer thread's chunks, each seen by the watcher before the next
            writer = threading.Thread(target=part.write_bytes, args=(b"u" * size,))
            writer.start()
            writer.join()
            reports.wait_for(lambda r, size=size: r is not None and r["bytes_done"] == size)
        part.rename(blobs / "aaa")
        reports.wait_for(lambda r: r is None)
    assert not watcher_threads()
    downloading = [r for r in reports.seen if r is not None]
    assert {r["bytes_total"] for r in downloading} == {3000}
    assert {r["file"] for r in downloading} == {UNET.path}
    assert reports.seen[-1] is None


def test_a_model_in_the_cache_asks_the_hub_nothing_and_reports_nothing(tmp_path: Path, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(download, "hub_files", lambda repo_id: asked.append(repo_id) or [])
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "aaa").write_bytes(b"u" * 3000)
    looks = threading.Semaphore(0)

    def clock() -> float:
        looks.release()
        return 0.0

    reports = Reports()
    with DownloadWatcher("org/model", reports, blobs=tmp_path / "blobs", interval_s=0.01, clock=clock):
        for _ in range(5):
            assert looks.acquire(timeout=30)
    assert asked == [] and reports.seen == []


def test_the_watcher_stops_when_the_load_fails(tmp_path: Path):
    with pytest.raises(OSError):
        with DownloadWatcher("org/model", Reports(), blobs=tmp_path, interval_s=0.01):
            raise OSError("no space left on device")
    assert not watcher_threads()
