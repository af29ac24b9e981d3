"""Progress of a hub model's download, measured from outside the loader.

diffusers downloads a hub model inside ``from_pretrained`` and offers no progress callback, so a
``DownloadWatcher`` thread looks at the model's folder in the Hugging Face cache about once a
second: huggingface_hub writes each file as ``blobs/<etag>.<id>.incomplete`` and renames it to
``blobs/<etag>`` when it is complete. The bytes done are the sizes of the blobs that were not
there when the load began; the total comes from the hub's list of the repo's files (their sizes
and etags), asked for once the download has begun (never for a model already in the cache).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

INCOMPLETE = ".incomplete"
# weights diffusers never takes from a Stable Diffusion repo when it is asked for safetensors
OTHER_WEIGHTS = (".bin", ".ckpt", ".msgpack", ".onnx", ".onnx_data", ".pb", ".h5", ".pt", ".pth")
SKIPPED_FOLDERS = ("safety_checker",)  # models.py passes safety_checker=None: it is not downloaded
MODEL_INFO_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HubFile:
    """A file of a hub repo: its path there, its size and its blob's name in the cache (the etag)."""

    path: str
    size: int
    blob: str


@dataclass(frozen=True)
class DownloadProgress:
    """How far a download is: bytes_total and eta_s are None while unknown."""

    bytes_done: int
    bytes_total: int | None
    eta_s: float | None
    file: str | None  # the largest file in progress (its path in the repo), if known

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def files_to_fetch(siblings: Iterable[Any]) -> list[HubFile]:
    """The files of a repo listing (huggingface_hub ``RepoSibling``s with metadata) that loading it
    as a Stable Diffusion pipeline with safetensors fetches (models.py: _load_hub): model_index.json
    and the components' folders, without the safety checker, other weight formats or the
    variants (``*.fp16.safetensors``, ``*.non_ema.safetensors``)."""
    wanted = []
    for sibling in siblings:
        path: str = sibling.rfilename
        folder, _, name = path.rpartition("/")
        if sibling.size is None or (not folder and name != "model_index.json") or "/" in folder:
            continue
        if folder in SKIPPED_FOLDERS or name.endswith(OTHER_WEIGHTS):
            continue
        if name.endswith(".safetensors") and "." in name[:-len(".safetensors")]:
            continue  # a variant
        blob = sibling.lfs.sha256 if sibling.lfs is not None else sibling.blob_id
        if blob:
            wanted.append(HubFile(path, int(sibling.size), blob))
    return wanted


def hub_files(repo_id: str) -> list[HubFile]:
    """What loading ``repo_id`` fetches, from the hub's file listing (network; raises when unreachable)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, files_metadata=True, timeout=MODEL_INFO_TIMEOUT_S)
    return files_to_fetch(info.siblings or ())


def hub_blobs_folder(repo_id: str) -> Path:
    """The blobs folder of a model repo in the Hugging Face cache (HF_HUB_CACHE, HF_HOME)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "blobs"


def _blob_sizes(blobs: Path) -> dict[str, int]:
    """Name -> size of the files in a blobs folder (none if it does not exist yet)."""
    sizes = {}
    try:
        entries = list(os.scandir(blobs))
    except OSError:
        return {}
    for entry in entries:
        try:
            sizes[entry.name] = entry.stat().st_size
        except OSError:  # renamed or removed since the listing
            continue
    return sizes


class DownloadMeter:
    """Turns looks at a blobs folder into progress; no thread and no clock of its own."""

    def __init__(self, blobs: Path, window_s: float = 10.0):
        self.blobs = blobs
        self._before = set(_blob_sizes(blobs))  # in the cache already, or left over by an earlier download
        self._files: dict[str, HubFile] | None = None  # blob name -> file
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def expect(self, files: list[HubFile] | None) -> None:
        """The files the load fetches (None: not known, the total stays unknown)."""
        self._files = None if files is None else {f.blob: f for f in files}

    def sample(self, now: float) -> DownloadProgress | None:
        """The progress at time ``now`` (seconds, any origin); None while nothing is downloading."""
        new = {name: size for name, size in _blob_sizes(self.blobs).items() if name not in self._before}
        done = sum(new.values())
        running = {name: size for name, size in new.items() if name.endswith(INCOMPLETE)}
        total = None
        if self._files is not None:
            total = max(done, sum(f.size for blob, f in self._files.items() if blob not in self._before))
        if not running and (total is None or not 0 < done < total):
            return None  # not begun, or over (the loader is reading the files now)
        self._samples.append((now, done))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window_s:
            self._samples.popleft()
        since, done_then = self._samples[0]
        rate = (done - done_then) / (now - since) if now > since else 0.0
        eta = round((total - done) / rate, 1) if total is not None and rate > 0 else None
        return DownloadProgress(done, total, eta, self._file_of(running))

    def _file_of(self, running: dict[str, int]) -> str | None:
        """The repo path of the largest file in progress, if the listing names it."""
        if not running or self._files is None:
            return None
        largest = max(running, key=running.__getitem__)
        known = self._files.get(largest.split(".", 1)[0])
        return known.path if known is not None else None


Report = Callable[[dict[str, Any] | None], None]


class DownloadWatcher:
    """While in its ``with`` block, a thread reports a hub model's download progress (as a dict, None
    once no download runs) to ``report`` each time it changes, looking every ``interval_s``."""

    def __init__(self, repo_id: str, report: Report, blobs: Path | None = None, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.repo_id = repo_id
        self._report = report
        self._meter = DownloadMeter(blobs if blobs is not None else hub_blobs_folder(repo_id))
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dragedit-download-watcher", daemon=True)

    def __enter__(self) -> "DownloadWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        asked, last = False, None
        while not self._stop.wait(self._interval_s):
            progress = self._meter.sample(self._clock())
            if progress is not None and not asked:  # a download has begun: how big is it?
                asked = True
                self._meter.expect(self._listing())
                progress = self._meter.sample(self._clock())
            now = progress.as_dict() if progress is not None else None
            if now != last:
                self._report(now)
                last = now

    def _listing(self) -> list[HubFile] | None:
        try:
            return hub_files(self.repo_id)
        except Exception as exc:  # offline, gated, timed out...: the total stays unknown
            log.info("the size of %s is not known (%s: %s)", self.repo_id, type(exc).__name__, exc)
            return None
