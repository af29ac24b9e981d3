"""install.py into temporary Krita / GIMP folders: files, vendored wheels, idempotence, uninstall, errors."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dragedit
import dragedit_protocol
import install

REPO = Path(__file__).resolve().parents[1]
HOST_PYTHON = "%d.%d" % sys.version_info[:2]  # Krita's vendor targets this, so this interpreter can import it
GIMP_PYTHON = "3.13"


def run_install(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "install.py"),
           "--krita-dir", str(tmp / "pykrita"), "--kritarc", str(tmp / "kritarc"), "--krita-python", HOST_PYTHON,
           "--gimp-dir", str(tmp / "plug-ins"), "--gimp-python", GIMP_PYTHON, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under folder: content digest and mtime, to prove a run changed nothing."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("editors")
    (tmp / "kritarc").write_text("[General]\nfoo=1\n\n[python]\nenable_other=true\n")
    done = run_install(tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp


def test_installs_both_plugins_with_their_files(installed):
    krita = installed / "pykrita"
    assert (krita / "dragedit_krita.desktop").read_bytes() == (REPO / "krita_plugin" / "dragedit_krita.desktop").read_bytes()
    assert (krita / "dragedit_krita" / "__init__.py").is_file()
    gimp_script = installed / "plug-ins" / "dragedit" / "dragedit.py"
    assert gimp_script.read_bytes() == (REPO / "gimp_plugin" / "dragedit" / "dragedit.py").read_bytes()
    assert os.access(gimp_script, os.X_OK)
    for plugin in (krita / "dragedit_krita", installed / "plug-ins" / "dragedit"):
        vendor = plugin / "_vendor"
        assert (vendor / "zmq" / "__init__.py").is_file()
        assert (vendor / "msgpack" / "__init__.py").is_file()
        assert (vendor / "dragedit_protocol" / "messages.py").read_bytes() == \
            (REPO / "protocol" / "dragedit_protocol" / "messages.py").read_bytes()


def test_writes_install_info_for_the_plugins(installed):
    for plugin, python in ((installed / "pykrita" / "dragedit_krita", HOST_PYTHON),
                           (installed / "plug-ins" / "dragedit", GIMP_PYTHON)):
        info = json.loads((plugin / "_vendor" / "dragedit_install.json").read_text())
        assert info["dragedit"] == str(REPO / ".venv" / "bin" / "dragedit")
        assert Path(info["dragedit"]).is_absolute()
        assert info["endpoint"] == dragedit_protocol.DEFAULT_ENDPOINT
        assert info["version"] == dragedit.__version__
        assert info["python"] == python


def test_vendored_wheels_are_built_for_each_editors_python(installed):
    def compiled(vendor: Path) -> list[str]:
        return [p.name for p in (vendor / "msgpack").glob("*.so")]

    krita_tag = "cpython-%d%d-" % sys.version_info[:2]
    assert compiled(installed / "pykrita" / "dragedit_krita" / "_vendor")
    assert all(krita_tag in name for name in compiled(installed / "pykrita" / "dragedit_krita" / "_vendor"))
    assert compiled(installed / "plug-ins" / "dragedit" / "_vendor")
    assert all("cpython-313-" in name for name in compiled(installed / "plug-ins" / "dragedit" / "_vendor"))


def test_vendored_pyzmq_imports_with_the_target_python(installed):
    vendor = installed / "pykrita" / "dragedit_krita" / "_vendor"
    probe = (
        "import sys; sys.path.insert(0, %r)\n"
        "import zmq, msgpack, dragedit_protocol\n"
        "a = zmq.Context.instance().socket(zmq.PAIR); a.bind('inproc://probe')\n"
        "b = zmq.Context.instance().socket(zmq.PAIR); b.connect('inproc://probe')\n"
        "b.send(msgpack.packb({'ok': 1})); assert msgpack.unpackb(a.recv()) == {'ok': 1}\n"
        "print(zmq.__file__); print(msgpack.__file__); print(dragedit_protocol.__file__)\n" % str(vendor)
    )
    # -I -S: no site-packages, no environment: only the stdlib and the vendor folder can be imported
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert len(files) == 3
    assert all(f.startswith(str(vendor) + os.sep) for f in files), files


def test_enables_the_krita_plugin_and_keeps_other_settings(installed):
    text = (installed / "kritarc").read_text()
    assert "[General]\nfoo=1\n" in text
    python_section = text.split("[python]\n", 1)[1]
    assert "enable_dragedit_krita=true" in python_section.splitlines()
    assert "enable_other=true" in python_section.splitlines()
    assert text.count("enable_dragedit_krita") == 1


def test_second_run_changes_nothing(installed):
    before = snapshot(installed)
    done = run_install(installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "venv: already up to date" in done.stdout
    assert "Krita: plug-in already up to date" in done.stdout
    assert "GIMP 3: plug-in already up to date" in done.stdout
    assert "pip install" not in done.stdout
    assert snapshot(installed) == before


def test_a_changed_plugin_file_is_replaced_and_the_vendor_kept(installed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(installed, copy)
    stale = copy / "pykrita" / "dragedit_krita" / "stale.py"
    stale.write_text("old\n")
    vendor_before = snapshot(copy / "pykrita" / "dragedit_krita" / "_vendor")
    done = run_install(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Krita: installed the plug-in" in done.stdout
    assert not stale.exists()
    assert snapshot(copy / "pykrita" / "dragedit_krita" / "_vendor") == vendor_before


def test_uninstall_removes_what_it_installed(installed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(installed, copy)
    done = run_install(copy, "--uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (copy / "pykrita" / "dragedit_krita").exists()
    assert not (copy / "pykrita" / "dragedit_krita.desktop").exists()
    assert not (copy / "plug-ins" / "dragedit").exists()
    kritarc = (copy / "kritarc").read_text()
    assert "enable_dragedit_krita" not in kritarc
    assert "enable_other=true" in kritarc and "foo=1" in kritarc
    assert (REPO / ".venv" / "bin" / "python").exists(), "--uninstall without --all keeps the venv"
    again = run_install(copy, "--uninstall")
    assert again.returncode == 0
    assert "Krita: no plug-in installed" in again.stdout and "GIMP 3: no plug-in installed" in again.stdout


def test_uninstall_leaves_a_folder_it_did_not_install(tmp_path):
    foreign = tmp_path / "plug-ins" / "dragedit"
    foreign.mkdir(parents=True)
    (foreign / "dragedit.py").write_text("# someone else's plug-in\n")
    done = run_install(tmp_path, "--uninstall")
    assert done.returncode == 0
    assert (foreign / "dragedit.py").exists()
    assert "was not installed by install.py" in done.stdout


@pytest.mark.parametrize("option, value", [("--krita-python", "3"), ("--gimp-python", "python3.13")])
def test_a_malformed_python_version_is_a_clear_error(tmp_path, option, value):
    args = ["--krita-dir", str(tmp_path / "k"), "--kritarc", str(tmp_path / "kritarc"), "--krita-python", HOST_PYTHON,
            "--gimp-dir", str(tmp_path / "g"), "--gimp-python", GIMP_PYTHON]
    args[args.index(option) + 1] = value
    done = subprocess.run([sys.executable, str(REPO / "install.py"), *args], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{option} {value!r} is not a Python version" in done.stderr
    assert "hint: write it as X.Y" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_undetectable_editor_python_asks_for_the_option(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(install.shutil, "which", lambda name: None)  # no krita / gimp on PATH
    code = install.main(["--gimp-dir", str(tmp_path / "g")])
    assert code == 1
    err = capsys.readouterr().err
    assert "could not find which Python version GIMP 3 runs plug-ins with" in err
    assert "--gimp-python X.Y" in err
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())


def test_symlinked_plugin_folder_is_refused(tmp_path):
    (tmp_path / "pykrita").mkdir()
    (tmp_path / "pykrita" / "dragedit_krita").symlink_to(REPO / "krita_plugin" / "dragedit_krita")
    done = run_install(tmp_path)
    assert done.returncode == 1
    assert "is a symbolic link" in done.stderr and "hint: remove the link" in done.stderr


@pytest.mark.parametrize("before, enabled, after", [
    ("", True, "[python]\nenable_x=true\n"),
    ("[General]\na=1\n", True, "[General]\na=1\n\n[python]\nenable_x=true\n"),
    ("[python]\nenable_x=false\nenable_y=true\n[Z]\nenable_x=keep\n", True,
     "[python]\nenable_x=true\nenable_y=true\n[Z]\nenable_x=keep\n"),
    ("[python]\nenable_x=true\nenable_y=true\n", False, "[python]\nenable_y=true\n"),
])
def test_kritarc_editing(tmp_path, before, enabled, after):
    kritarc = tmp_path / "kritarc"
    kritarc.write_text(before)
    assert install.set_krita_plugin_enabled(kritarc, "x", enabled) is (before != after)
    assert kritarc.read_text() == after
    assert install.set_krita_plugin_enabled(kritarc, "x", enabled) is False
