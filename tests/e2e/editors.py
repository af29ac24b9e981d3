"""Real-editor harness: install Krita / GIMP 3 when missing and run a Python script inside them.

- Krita (Debian 12's 5.1.5) runs on the host under its own Xvfb; the runner plug-in in
  krita_runner/ executes the script in Krita's GUI thread and exits Krita with its status.
- GIMP 3 runs as gimp-console in a Debian trixie chroot (cached under CACHE); the script runs
  through python-fu-eval, which is itself a plug-in process with the full libgimp API.
  gimp_gui() runs the full GIMP (gimp-3.0, with its windows) the same way on an Xvfb display, with
  GTK's accessibility tree readable, for tests that click its dialogs through the X server.
- install_plugins() runs the project's install.py, so the plug-ins under test are the installed
  ones, with their vendored pyzmq (Debian's python3-zmq is installed in neither place).
Setup needs root (apt-get, debootstrap, chroot). Cache folder: $DRAGEDIT_E2E_CACHE or
/var/cache/dragedit-e2e.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import install  # the repository's install.py (pytest.ini puts the root on sys.path)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTS = HERE / "scripts"
KRITA_RUNNER = HERE / "krita_runner"  # pykrita-style folder: dragedit_e2e_runner/ + .desktop
CACHE = Path(os.environ.get("DRAGEDIT_E2E_CACHE", "/var/cache/dragedit-e2e"))
GIMP_ROOT = CACHE / "gimp3-root"
KRITA6_ROOT = CACHE / "krita6-root"  # Debian sid + Krita 6 from experimental
KRITA_HOME = CACHE / "krita-home"  # reused between runs: Krita starts ~10 s faster
KRITA_PYKRITA = KRITA_HOME / ".local" / "share" / "krita" / "pykrita"
GIMP_HOME = "/var/tmp/dragedit-e2e-home"  # as seen inside the chroot
GIMP_PLUGINS = f"{GIMP_HOME}/.config/GIMP/3.0/plug-ins"  # as seen inside the chroot
GIMP_ATSPI = "/usr/lib/x86_64-linux-gnu/girepository-1.0/Atspi-2.0.typelib"  # the accessibility tree's API
GIMP_WORK = "/tmp/dragedit-e2e"  # scripts and their output, as seen inside the chroot
# Variables that would let the editors' Python see this test run's virtualenv or display.
HOST_ONLY_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM",
                 "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR")
GIMP_NOISE = re.compile(r"^$|cannot open display|gimp_wire_read|Welcome to GIMP|stray image|tag cache")


class EditorUnavailable(RuntimeError):
    """The editor is missing and could not be installed here."""


@contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """Serialise setup steps between concurrent test runs on this machine."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _setup(script: str, args: list[str], editor: str) -> None:
    if os.geteuid() != 0:
        raise EditorUnavailable(f"{editor} is not installed and installing it needs root (apt-get)")
    log_path = CACHE / f"{Path(script).stem}.log"
    with open(log_path, "wb") as log:
        rc = subprocess.call(["bash", str(SCRIPTS / script), *args], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    if rc != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise EditorUnavailable(f"installing {editor} failed (exit {rc}, log {log_path}):\n{tail}")


def _run_group(cmd: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run cmd in its own process group with output captured; kill the whole group on timeout (rc 124)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, out.decode(errors="replace") + f"\n[harness] killed after {timeout_s:.0f} s"


def _editor_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY_ENV}
    env.update(extra)
    return env


@contextmanager
def xvfb(size: str = "1280x1024") -> Iterator[str]:
    """A private X server on a display it picks itself (-displayfd: no race), always killed afterwards."""
    read_end, write_end = os.pipe()
    # -noreset: without it Xvfb resets when its last client disconnects, and a Krita starting right then
    # aborts with "could not connect to display" (7 of 12 starts failed without it, 0 of 12 with it).
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24", "-nolisten", "tcp",
                               "-noreset"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    try:
        with os.fdopen(read_end) as announced:
            if not select.select([announced], [], [], 20)[0]:
                raise EditorUnavailable("Xvfb did not announce a display within 20 s")
            number = announced.readline().strip()
        if not number.isdigit() or server.poll() is not None:
            raise EditorUnavailable(f"Xvfb did not start (exit {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()  # lets it remove its socket
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --------------------------------------------------------------------------- Krita


def ensure_krita() -> None:
    """Install Debian's Krita, PyQt5 and Xvfb when missing (never python3-zmq)."""
    if shutil.which("krita") and shutil.which("Xvfb"):
        return
    with _cache_lock("apt"):
        if not (shutil.which("krita") and shutil.which("Xvfb")):
            _setup("install_krita.sh", [], "Krita")


def _prepare_krita_home(home: Path, plugin_dirs: list[Path]) -> None:
    """Krita's home for one run: the runner and the plug-ins enabled, a private runtime and temp folder."""
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    shutil.rmtree(pykrita, ignore_errors=True)
    pykrita.mkdir(parents=True)
    kritarc = home / ".config" / "kritarc"
    for folder in [KRITA_RUNNER, *plugin_dirs]:
        shutil.copytree(folder, pykrita, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        for desktop in Path(folder).glob("*.desktop"):
            install.set_krita_plugin_enabled(kritarc, desktop.stem, True)  # Krita rewrites it on exit
    (home / "runtime").mkdir(mode=0o700, exist_ok=True)
    temp = home / "tmp"  # Krita's swap and frame-cache files, which it leaves when stopped
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    (home / "e2e.log").unlink(missing_ok=True)


def run_in_krita(script: Path, plugin_dirs: list[Path], env: dict[str, str], fixture: Path | None = None,
                 timeout_s: float = 300, root: Path | None = None) -> tuple[int, str]:
    """Run `script` inside a real Krita under Xvfb; returns (exit code, log).

    Each of plugin_dirs is a pykrita-style folder (NAME/ + NAME.desktop, as install.py writes
    them); their plug-ins are copied into Krita's pykrita folder and enabled. `fixture` is a
    document Krita opens on start. `root`: run the Krita of that chroot (Debian trixie's 5.2.9,
    see ensure_trixie_krita) instead of the host's; the script's folder is copied in, and the
    paths in env's DRAGEDIT_E2E_REPORT / DRAGEDIT_E2E_SHOTS are mapped in and copied back.
    Exit code: 0 passed, 1 failed, 124 timed out.
    """
    if root is None:
        ensure_krita()
        env = {**daemon_keys(env.get("DRAGEDIT_ENDPOINT", "")), **env}  # a chroot's get theirs in _chroot_env
    inside = Path("/var/tmp/dragedit-e2e-krita")  # the chroot's Krita home and exchange folder
    home = KRITA_HOME if root is None else root / inside.relative_to("/") / "home"
    with _cache_lock("krita-home" if root is None else "krita-root-home"):
        _prepare_krita_home(home, plugin_dirs)
        seen_home = home if root is None else inside / "home"
        extra = {"HOME": str(seen_home), "XDG_RUNTIME_DIR": str(seen_home / "runtime"), "TMPDIR": str(seen_home / "tmp"),
                 "DRAGEDIT_E2E_LOG": str(seen_home / "e2e.log"), "DRAGEDIT_E2E_TIMEOUT_S": str(timeout_s)}
        copy_back: list[tuple[Path, Path]] = []
        if root is None:
            extra["DRAGEDIT_E2E_SCRIPT"] = str(Path(script).resolve())
        else:
            exchange = root / inside.relative_to("/") / "exchange"
            shutil.rmtree(exchange, ignore_errors=True)
            shutil.copytree(Path(script).resolve().parent, exchange / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
            extra["DRAGEDIT_E2E_SCRIPT"] = str(inside / "exchange" / "scripts" / Path(script).name)
            (exchange / "shots").mkdir()
            for key, name in (("DRAGEDIT_E2E_REPORT", "report.json"), ("DRAGEDIT_E2E_SHOTS", "shots")):
                if key in env:
                    copy_back.append((exchange / name, Path(env[key])))
                    env = {**env, key: str(inside / "exchange" / name)}
        with xvfb() as display:
            if root is None:
                cmd = ["krita", "--nosplash", *([str(Path(fixture).resolve())] if fixture else [])]
                rc, output = _run_group(cmd, _editor_env({**extra, "DISPLAY": display, **env}), timeout_s + 30)
            else:  # a clean environment, as in run_in_gimp; the chroot reaches Xvfb through its abstract socket
                _mount_proc(root)
                scripts = inside / "exchange" / "scripts"
                clean = _chroot_env(root, {**extra, **env})
                opened: list[str] = []
                if (Path(script).resolve().parent / "scene.py").exists():  # the scene, saved as a file Krita opens
                    scene = str(inside / "exchange" / "scene.kra")
                    rc, output = _run_group([*clean, "QT_QPA_PLATFORM=offscreen", f"PYTHONPATH={scripts}",
                                             "kritarunner", "-s", "scene", "-f", "make_fixture", scene],
                                            os.environ.copy(), 120)
                    if not (root / scene.lstrip("/")).exists():
                        return rc, f"--- kritarunner could not make the scene (exit {rc}) ---\n{output}"
                    opened = [scene]
                    clean.append(f"DRAGEDIT_E2E_SCENE={scene}")
                rc, output = _run_group([*clean, f"DISPLAY={display}", "krita", "--nosplash", *opened],
                                        os.environ.copy(), timeout_s + 30)
        for source, target in copy_back:
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.exists():
                shutil.copyfile(source, target)
        log_path = home / "e2e.log"
        runner_log = log_path.read_text(errors="replace") if log_path.exists() else "(the runner wrote no log)\n"
    return rc, f"{runner_log}--- krita output (exit {rc}) ---\n{output}"


def _mount_proc(root: Path) -> None:
    """Krita needs /proc; the chroot keeps it mounted between runs."""
    if subprocess.call(["mountpoint", "-q", str(root / "proc")]) != 0:
        subprocess.check_call(["mount", "-t", "proc", "proc", str(root / "proc")])


def ensure_krita6() -> Path:
    """Build (once) the Debian sid chroot with Krita 6 (Qt 6, PyQt6) from Debian experimental; returns its root."""
    if not (KRITA6_ROOT / ".dragedit-ready").exists():
        with _cache_lock("krita6-root"):
            _setup("build_krita6_root.sh", [str(KRITA6_ROOT)], "Krita 6")
    return KRITA6_ROOT


def ensure_trixie_krita() -> Path:
    """Debian trixie's Krita 5.2.9 (Python 3.13) and xdotool, added to the GIMP 3 chroot; returns its root."""
    root = ensure_gimp()
    if not (root / ".dragedit-krita-ready").exists():
        with _cache_lock("gimp3-root"):
            _setup("add_krita_to_root.sh", [str(root)], "Krita 5.2.9")
    return root


# --------------------------------------------------------------------------- GIMP 3


def ensure_gimp() -> Path:
    """Build (once) the Debian trixie chroot with GIMP 3, Python support and GTK's accessibility
    bridge (for the clicked tests); returns its root."""
    if not ((GIMP_ROOT / ".dragedit-ready").exists() and (GIMP_ROOT / GIMP_ATSPI.lstrip("/")).exists()):
        with _cache_lock("gimp3-root"):
            _setup("build_gimp_root.sh", [str(GIMP_ROOT)], "GIMP 3")
    return GIMP_ROOT


def chroot_python_version(root: Path) -> str:
    """X.Y of the chroot's python3 (the one GIMP's plug-ins and Krita there run with)."""
    found = re.fullmatch(r"python(3\.\d+)", os.readlink(root / "usr" / "bin" / "python3"))
    if not found:
        raise EditorUnavailable(f"cannot tell the Python version of {root}/usr/bin/python3")
    return found.group(1)


def _prepare_gimp(root: Path, script: Path, plugin_dirs: list[Path]) -> str:
    """Copy the plug-in folders into the chroot's plug-ins folder and the script to GIMP_WORK;
    returns the python-fu-eval batch command that runs the script. Call with the gimp-home lock held."""
    plugins = root / GIMP_PLUGINS.lstrip("/")
    shutil.rmtree(plugins, ignore_errors=True)
    plugins.mkdir(parents=True)
    for folder in map(Path, plugin_dirs):
        shutil.copytree(folder, plugins / folder.name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        (plugins / folder.name / f"{folder.name}.py").chmod(0o755)
    inside = f"{GIMP_WORK}/{Path(script).name}"
    (root / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(script, root / inside.lstrip("/"))
    return f"exec(compile(open({inside!r}).read(), {inside!r}, 'exec'))"


def _chroot_env(root: Path, env: dict[str, str]) -> list[str]:
    """The command prefix running a program in the chroot with only HOME (default GIMP's), LANG, PATH
    and ``env`` set (plus the client keys of the test daemon at env's DRAGEDIT_ENDPOINT, see daemon_keys)."""
    env = {"HOME": GIMP_HOME, **daemon_keys(env.get("DRAGEDIT_ENDPOINT", ""), root), **env}
    return ["chroot", str(root), "env", "-i", "LANG=C.UTF-8", "PATH=/usr/bin:/bin",
            *(f"{k}={v}" for k, v in env.items())]


def run_in_gimp(script: Path, plugin_dirs: list[Path], env: dict[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """Run `script` with gimp-console's python-fu-eval in the GIMP 3 chroot; returns (exit code, log).

    Each of plugin_dirs is a GIMP plug-in folder NAME/ holding an executable NAME.py; they are
    copied into the chroot's plug-ins folder (GIMP_PLUGINS). `env` is all the script sees besides
    HOME, LANG and PATH. Exit code: 0 passed, 64 the script raised, 124 timed out.
    """
    root = ensure_gimp()
    with _cache_lock("gimp-home"):
        batch = _prepare_gimp(root, script, plugin_dirs)
        cmd = [*_chroot_env(root, env), "gimp-console-3.0", "-i", "--quit", "--batch-interpreter=python-fu-eval",
               "-b", batch]
        rc, output = _run_group(cmd, os.environ.copy(), timeout_s)
    lines = [line for line in output.splitlines() if not GIMP_NOISE.search(line)]
    return rc, "\n".join(lines + [f"--- gimp-console exit {rc} ---"])


class GimpWindows:
    """The real GIMP 3 running with its windows on an X display (see ``gimp_gui``)."""

    PROBE = HERE / "gimp_scripts" / "atspi_probe.py"

    def __init__(self, root: Path, display: str, bus: str, process: subprocess.Popen, log: Path):
        self.root, self.display, self.bus, self.process, self.log = root, display, bus, process, log
        self._probe: subprocess.Popen | None = None
        shutil.copyfile(self.PROBE, root / GIMP_WORK.lstrip("/") / self.PROBE.name)

    def widgets(self, title: str) -> list[dict]:
        """The widgets on screen in the window titled ``title``, from GTK's accessibility tree (see
        gimp_scripts/atspi_probe.py for the fields); [] when no such window is shown."""
        if self._probe is None:
            cmd = [*_chroot_env(self.root, {"DBUS_SESSION_BUS_ADDRESS": self.bus}), "python3",
                   f"{GIMP_WORK}/{self.PROBE.name}"]
            self._probe = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, start_new_session=True)
        self._probe.stdin.write(title + "\n")
        self._probe.stdin.flush()
        answer = self._probe.stdout.readline()
        if not answer:
            raise RuntimeError(f"the accessibility probe stopped (exit {self._probe.wait()}):\n"
                               f"{self._probe.stderr.read()[-3000:]}")
        return json.loads(answer)

    def close(self) -> None:
        """Stop the accessibility probe (GIMP itself is stopped by ``gimp_gui``)."""
        if self._probe is not None:
            self._probe.stdin.close()
            try:
                self._probe.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._probe.pid, signal.SIGKILL)
                self._probe.wait()
            self._probe = None

    def output(self) -> str:
        """What GIMP and its plug-ins printed so far, without GIMP's usual noise."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(line for line in text.splitlines() if not GIMP_NOISE.search(line))


@contextmanager
def gimp_gui(script: Path, plugin_dirs: list[Path], env: dict[str, str], display: str,
             log: Path) -> Iterator[GimpWindows]:
    """Start the real GIMP 3 with its windows (gimp-3.0) on ``display``, running ``script`` with
    python-fu-eval, and GTK's accessibility bus on a private session bus, so a test reads the
    widgets (GimpWindows.widgets) and clicks them through the X server. GIMP quits when the script
    returns; anything still running at the end is killed. Output goes to ``log``.
    """
    root = ensure_gimp()
    with _cache_lock("gimp-home"):
        batch = _prepare_gimp(root, script, plugin_dirs)
        gimprc = root / GIMP_HOME.lstrip("/") / ".config" / "GIMP" / "3.0" / "gimprc"
        gimprc.parent.mkdir(parents=True, exist_ok=True)
        gimprc.write_text("(show-welcome-dialog no)\n")  # it would cover part of GIMP's window in the screenshots
        socket_path = f"{GIMP_WORK}/session-bus"
        (root / socket_path.lstrip("/")).unlink(missing_ok=True)
        bus = f"unix:path={socket_path}"
        dbus = subprocess.Popen([*_chroot_env(root, {}), "dbus-daemon", "--session", "--nofork", f"--address={bus}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        gimp = None
        try:
            with open(log, "wb") as out:
                gimp = subprocess.Popen(
                    [*_chroot_env(root, {"DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": bus, **env}), "gimp-3.0",
                     "--no-splash", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            windows = GimpWindows(root, display, bus, gimp, log)
            try:
                yield windows
            finally:
                windows.close()
        finally:
            for proc in (gimp, dbus):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


# --------------------------------------------------------------------------- the product


def install_plugins(tmp: Path, editors: tuple[str, ...] = ("krita", "gimp"), krita_python: str | None = None) -> dict:
    """Run install.py into temporary Krita / GIMP folders; returns where the plug-ins went.

    Keys: "krita_dir" (a pykrita-style folder for run_in_krita), "krita_plugin" (its
    dragedit_krita/), "gimp_plugin" (the dragedit/ folder for run_in_gimp), "output".
    """
    tmp = Path(tmp)
    cmd = [sys.executable, str(REPO / "install.py")]
    result: dict = {}
    if "krita" in editors:
        if krita_python is None:
            ensure_krita()
        else:
            cmd += ["--krita-python", krita_python]
        result["krita_dir"] = tmp / "krita" / "pykrita"
        result["krita_plugin"] = result["krita_dir"] / "dragedit_krita"
        cmd += ["--krita-dir", str(result["krita_dir"]), "--kritarc", str(tmp / "krita" / "kritarc")]
    if "gimp" in editors:
        version = chroot_python_version(ensure_gimp())
        result["gimp_plugin"] = tmp / "gimp" / "plug-ins" / "dragedit"
        cmd += ["--gimp-dir", str(result["gimp_plugin"].parent), "--gimp-python", version]
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    result["output"] = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"install.py failed (exit {done.returncode}):\n{result['output']}")
    return result


def screenshot_folder(editor: str) -> Path:
    """A fresh folder for one test's screenshots: $DRAGEDIT_E2E_SHOTS/EDITOR (default CACHE/shots/EDITOR)."""
    base = Path(os.environ.get("DRAGEDIT_E2E_SHOTS", CACHE / "shots"))
    folder = base / editor
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


KEY_VARIABLES = ("DRAGEDIT_SERVER_KEY", "DRAGEDIT_CLIENT_KEY_FILE")
_DAEMON_KEYS: dict[str, dict[str, str]] = {}  # endpoint -> the KEY_VARIABLES of the daemon start_daemon started there


def daemon_keys(endpoint: str, root: Path | None = None) -> dict[str, str]:
    """The client keys of the test daemon at ``endpoint`` as KEY_VARIABLES ({} for another endpoint).

    ``root``: as a chroot sees them (the key file copied in): an editor there does not share the
    daemon user's data folder, like a client on another machine.
    """
    keys = _DAEMON_KEYS.get(endpoint)
    if not keys or root is None:
        return dict(keys or {})
    inside = f"/tmp/dragedit-e2e/client-{abs(hash(endpoint))}.key_secret"
    target = root / inside.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keys["DRAGEDIT_CLIENT_KEY_FILE"], target)
    target.chmod(0o600)
    return {"DRAGEDIT_SERVER_KEY": keys["DRAGEDIT_SERVER_KEY"], "DRAGEDIT_CLIENT_KEY_FILE": inside}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_answers(endpoint: str, timeout_s: float = 5, home: Path | None = None) -> bool:
    """Whether a daemon at endpoint answers a ping within timeout_s, with the local keys of its data
    folder ``home`` (default: the keys of the daemon start_daemon started there, see daemon_keys)."""
    import zmq  # the test run's own pyzmq (the virtualenv's), not an editor's
    from dragedit_protocol import messages
    from dragedit_protocol.keys import load_client_keys, local_client_keys

    known = daemon_keys(endpoint)
    keys = local_client_keys(home) if home is not None else load_client_keys(*(known.get(k) for k in KEY_VARIABLES))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    # A send with no connected peer blocks for ever: a daemon that is not up yet, or whose keys this
    # socket lacks (they are created at its first start), never completes the handshake.
    sock.setsockopt(zmq.SNDTIMEO, 1000)
    keys.apply(sock)
    sock.connect(endpoint)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                sock.send(messages.encode({"type": "ping"}))
            except zmq.Again:
                continue
            if sock.poll(min(1000, max(1, int((deadline - time.monotonic()) * 1000)))):
                return messages.decode_daemon(sock.recv_multipart()[-1]).get("type") == "pong"
        return False
    finally:
        sock.close()


def start_daemon(model_dir: Path | str, home: Path, timeout_s: float = 120,
                 extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `.venv/bin/dragedit serve` with DRAGEDIT_HOME=home on a free loopback port; wait until it answers a ping.

    ``model_dir``: its --model (a folder, or e.g. a hub id that cannot load here). Only clients with
    the daemon's keys get in (CurveZMQ): daemon_keys(endpoint) gives them to the editors the tests
    start (run_in_krita and run_in_gimp add them for the DRAGEDIT_ENDPOINT they pass). Its output goes
    to home/daemon.out. The caller terminates the process.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with open(home / "daemon.out", "wb") as out:
        proc = subprocess.Popen(
            # The tiny test model works at 64 px: the default 512 would make every drag minutes long on a CPU.
            [str(REPO / ".venv" / "bin" / "dragedit"), "serve", "--model", str(model_dir), "--endpoint", endpoint,
             "--work-size", "64"],
            env={**os.environ, "DRAGEDIT_HOME": str(home), **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if daemon_answers(endpoint, timeout_s=1, home=home):
            from dragedit_protocol.keys import KEYS_FOLDER, LOCAL_CLIENT_FILE, local_client_keys

            _DAEMON_KEYS[endpoint] = {
                "DRAGEDIT_SERVER_KEY": local_client_keys(home).server_public_key.decode("ascii"),
                "DRAGEDIT_CLIENT_KEY_FILE": str(home / KEYS_FOLDER / LOCAL_CLIENT_FILE)}
            return proc, endpoint
    proc.kill()
    proc.wait()
    tail = "\n".join((home / "daemon.out").read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"the daemon did not answer on {endpoint} (exit {proc.returncode}):\n{tail}")
