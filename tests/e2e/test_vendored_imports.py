"""Inside the real Krita and the real GIMP 3, `import zmq` loads install.py's vendored pyzmq.

A probe script runs in the editor's own Python: it checks that no pyzmq exists anywhere on the
editor's sys.path except the installed plug-in's _vendor folder, imports zmq, msgpack and
dragedit_protocol from there, and sends one message over TCP to a ZeroMQ echo socket in this
test process (so the vendored libzmq really works across the editor / host boundary).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import msgpack
import pytest
import zmq

import editors

pytestmark = pytest.mark.editor

PROBE = '''
import importlib.machinery, os, sys
vendor = os.environ["DRAGEDIT_E2E_VENDOR"]
elsewhere = [p for p in sys.path if not os.path.abspath(p or ".").startswith(vendor)]
other = importlib.machinery.PathFinder.find_spec("zmq", elsewhere)
assert other is None, "a pyzmq outside the plug-in's _vendor is importable: %s" % other.origin
if vendor not in sys.path:
    sys.path.insert(0, vendor)
import zmq, msgpack, dragedit_protocol
for module in (zmq, msgpack, dragedit_protocol):
    assert module.__file__.startswith(vendor + os.sep), (module.__name__, module.__file__)
sock = zmq.Context.instance().socket(zmq.REQ)
sock.setsockopt(zmq.LINGER, 0)
sock.setsockopt(zmq.RCVTIMEO, 20000)
sock.connect(os.environ["DRAGEDIT_E2E_ECHO"])
sock.send(msgpack.packb({
    "python": "%d.%d" % sys.version_info[:2], "zmq": zmq.__file__, "libzmq": zmq.zmq_version(),
    "msgpack": msgpack.__file__, "protocol": dragedit_protocol.__file__,
}))
assert msgpack.unpackb(sock.recv()) == {"ok": True}
sock.close()
print("vendored imports ok:", zmq.__file__, "libzmq", zmq.zmq_version())
'''


@pytest.fixture
def echo_server():
    """A REP socket on loopback that records what the editor sends and answers {"ok": True}."""
    received: list[dict] = []
    sock = zmq.Context.instance().socket(zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.setsockopt(zmq.RCVTIMEO, 500)
    stop = threading.Event()

    def serve() -> None:  # the socket is used by this thread only from here on
        while not stop.is_set():
            try:
                received.append(msgpack.unpackb(sock.recv()))
            except zmq.Again:
                continue
            sock.send(msgpack.packb({"ok": True}))
        sock.close(linger=0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{port}", received
    stop.set()
    thread.join(5)


def check_probe(received: list[dict], vendor: str, plugin: Path) -> None:
    python = json.loads((plugin / "_vendor" / "dragedit_install.json").read_text())["python"]
    assert len(received) == 1, received
    message = received[0]
    assert message["python"] == python, f"vendored for Python {python}, but the editor runs {message['python']}"
    for key in ("zmq", "msgpack", "protocol"):
        assert message[key].startswith(vendor + "/"), message


def test_krita_imports_vendored_pyzmq(installed_plugins, echo_server, tmp_path):
    endpoint, received = echo_server
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    vendor = str(editors.KRITA_PYKRITA / "dragedit_krita" / "_vendor")
    rc, log = editors.run_in_krita(script, [installed_plugins["krita_dir"]],
                                   {"DRAGEDIT_E2E_VENDOR": vendor, "DRAGEDIT_E2E_ECHO": endpoint}, timeout_s=120)
    assert rc == 0, log
    check_probe(received, vendor, installed_plugins["krita_plugin"])


def test_gimp_imports_vendored_pyzmq(installed_plugins, echo_server, tmp_path):
    endpoint, received = echo_server
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    vendor = f"{editors.GIMP_PLUGINS}/dragedit/_vendor"
    rc, log = editors.run_in_gimp(script, [installed_plugins["gimp_plugin"]],
                                  {"DRAGEDIT_E2E_VENDOR": vendor, "DRAGEDIT_E2E_ECHO": endpoint}, timeout_s=120)
    assert rc == 0, log
    check_probe(received, vendor, installed_plugins["gimp_plugin"])
