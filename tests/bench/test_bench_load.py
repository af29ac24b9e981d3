"""`dragedit bench load` against a daemon with two CPU workers: every job completes exactly once."""
from __future__ import annotations

import json

from dragedit.bench import load


def test_two_workers_lose_and_duplicate_nothing_under_load(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert load.main(["--clients", "3", "--jobs", "3", "--devices", "cpu,cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["devices"] == "cpu,cpu"
    assert report["submitted"] == report["completed"] == 9
    assert report["lost"] == report["duplicated"] == report["failed"] == 0
