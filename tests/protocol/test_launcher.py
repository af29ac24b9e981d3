"""Where the plug-ins' launcher sends the daemon's output: the user's private data folder, mode 600,
never through a link, rotated."""
from __future__ import annotations

import os

import pytest

from dragedit_protocol.editor.launcher import DaemonLauncher, InstallInfo, default_log_path, open_private_log


def test_the_daemon_log_is_in_the_private_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGEDIT_HOME", str(tmp_path / "home"))
    assert default_log_path() == tmp_path / "home" / "logs" / "serve.out"
    exe = tmp_path / "dragedit"
    exe.write_text("#!/bin/sh\necho started\n")
    exe.chmod(0o755)
    launcher = DaemonLauncher(InstallInfo(str(exe), "tcp://127.0.0.1:1"), "tcp://127.0.0.1:1")
    launcher.start()
    launcher.process.wait(10)
    assert launcher.log_tail() == "started"
    for path, mode in ((tmp_path / "home", 0o700), (tmp_path / "home" / "logs", 0o700), (default_log_path(), 0o600)):
        assert path.stat().st_mode & 0o777 == mode, path


def test_an_existing_log_is_made_private_and_rotated(tmp_path):
    log = tmp_path / "logs" / "serve.out"
    log.parent.mkdir()
    log.write_bytes(b"x" * 2000)
    log.chmod(0o644)
    os.close(open_private_log(log, rotate_bytes=1000))
    assert log.stat().st_mode & 0o777 == 0o600 and log.stat().st_size == 0
    assert (tmp_path / "logs" / "serve.out.1").read_bytes() == b"x" * 2000


def test_a_link_in_place_of_the_log_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    log = tmp_path / "logs" / "serve.out"
    log.parent.mkdir()
    log.symlink_to(target)
    with pytest.raises(OSError):
        open_private_log(log)
    assert target.read_text() == "precious\n"
