"""CurveZMQ and the model policy: no authorised keys, no remote serving; unknown keys get no reply
at all; a client cannot touch (or learn about) another client's jobs, not even with its routing id;
other OS users cannot reach a local daemon; remote jobs cannot name arbitrary model files."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import zmq

from daemon_support import all_final, final, pump, ready, submit
from dragedit.daemon import DaemonError, security
from dragedit.daemon.model_policy import ModelPolicy
from dragedit.engine.api import EditError
from dragedit_protocol.client import DaemonClient


def test_an_address_other_machines_can_reach_needs_keys(start_daemon):
    with pytest.raises(DaemonError, match="dragedit keys new-client"):
        start_daemon(endpoint="tcp://0.0.0.0:*")


@pytest.mark.parametrize("endpoint, problem", [
    ("tcp://[127.0.0.1]:5555", "IPv6 address only"), ("tcp://127.0.0.1", "no valid port"),
    ("tcp://127.0.0.1:99999", "no valid port"), ("http://127.0.0.1:80", "not a daemon address"),
    ("tcp://:5555", "no valid host"),
])
def test_a_malformed_endpoint_is_a_sentence(endpoint, problem):
    with pytest.raises(security.EndpointError, match=problem):
        security.check_endpoint(endpoint)
    security.is_local_endpoint(endpoint)  # answers, never raises (it raised ValueError for the brackets)


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:1", True), ("tcp://localhost:1", True), ("tcp://[::1]:1", True), ("ipc:///tmp/x", True),
    ("tcp://0.0.0.0:1", False), ("tcp://*:1", False), ("tcp://192.168.1.5:1", False), ("tcp://eth0:1", False),
])
def test_which_endpoints_are_local(endpoint, local):
    assert security.is_local_endpoint(endpoint) is local


def reachable_daemon(start_daemon, home, **options):
    """A daemon listening on every interface (one client authorised first: 'first'), with
    ``test_endpoint`` on loopback."""
    security.create_server_keys(home)
    security.new_client(home, "first")
    daemon = start_daemon(endpoint="tcp://0.0.0.0:*", **options)
    port = daemon.bound_endpoint.rsplit(":", 1)[1]
    daemon.test_endpoint = f"tcp://127.0.0.1:{port}"
    return daemon


@pytest.fixture
def secure_daemon(start_daemon, home):
    """A CurveZMQ daemon listening on every interface."""
    daemon = reachable_daemon(start_daemon, home)
    assert daemon.secure
    return daemon


def client_with(home, daemon, keys: tuple[bytes, bytes] | None, connect, server_key: bytes | None = None) -> DaemonClient:
    server_public = server_key or security.load_server_keys(home)[0]
    public, secret = keys if keys else (None, None)
    return connect(daemon.test_endpoint, server_public_key=server_public, client_public_key=public,
                   client_secret_key=secret, timeout_s=1.5)


def stays_silent(client: DaemonClient, seconds: float = 2.5) -> list[dict]:
    received = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        received += client.poll(50)
    return received


def test_an_authorised_client_is_served_and_an_unknown_one_gets_no_reply(secure_daemon, home, connect, tmp_path):
    alice = client_with(home, secure_daemon, security.new_client(home, "alice"), connect)
    assert ready(alice)["secure"] is True
    job_id = submit(alice)
    assert final(pump([alice], all_final(job_id)), job_id)["type"] == "result"

    stranger = client_with(home, secure_daemon, zmq.curve_keypair(), connect)
    assert stays_silent(stranger) == [] and stranger.state == "unreachable"
    assert "keys" in stranger.error_text

    plain = connect(secure_daemon.test_endpoint, timeout_s=1.5, data_folder=tmp_path)  # no CurveZMQ at all
    assert stays_silent(plain) == [] and plain.state == "unreachable"


def test_a_client_with_the_wrong_server_key_gets_no_reply(secure_daemon, home, connect):
    impostor_server_key = zmq.curve_keypair()[0]
    client = client_with(home, secure_daemon, security.new_client(home, "bob"), connect, impostor_server_key)
    assert stays_silent(client) == []


def test_revoking_a_client_locks_it_out_without_a_restart(secure_daemon, home, connect):
    keys = security.new_client(home, "carol")
    ready(client_with(home, secure_daemon, keys, connect))
    security.revoke(home, "carol")
    assert stays_silent(client_with(home, secure_daemon, keys, connect)) == []
    assert "carol" not in security.authorized(home)


def test_an_authorised_client_cannot_fetch_or_cancel_another_clients_job(secure_daemon, home, connect):
    alice = client_with(home, secure_daemon, security.new_client(home, "alice"), connect)
    mallory = client_with(home, secure_daemon, security.new_client(home, "mallory"), connect)
    ready(alice), ready(mallory)
    job_id = submit(alice, params={"steps": 20, "step_s": 0.02})
    pump([alice], lambda seen: any(m["type"] == "progress" for m in seen))
    mallory.cancel(job_id)
    mallory.fetch(job_id)
    seen = pump([alice, mallory], lambda seen: final([m for m in seen if m["_client"] == 0], job_id) is not None
                and sum(m["type"] == "error" and m["_client"] == 1 for m in seen) == 2)
    assert final([m for m in seen if m["_client"] == 0], job_id)["type"] == "result"
    assert [m["code"] for m in seen if m["_client"] == 1] == ["unknown_job", "unknown_job"]


def test_a_remote_daemon_serves_only_the_models_it_is_configured_for(start_daemon, home, connect, tmp_path):
    models = tmp_path / "models"
    (models / "fine-tune").mkdir(parents=True)
    daemon = reachable_daemon(start_daemon, home, model_folders=(str(models),), allow_models=("org/allowed",))
    client = client_with(home, daemon, security.new_client(home, "alice"), connect)
    ready(client)
    jobs = {model: submit(client, model=model) for model in
            ("/etc/passwd", f"{models}/../../../etc/shadow", "org/other", "org/allowed", f"{models}/fine-tune")}
    seen = pump([client], all_final(*jobs.values()))
    outcome = {model: final(seen, job)["type"] if final(seen, job)["type"] == "result" else final(seen, job)["code"]
               for model, job in jobs.items()}
    assert outcome == {"/etc/passwd": "model_not_allowed", f"{models}/../../../etc/shadow": "model_not_allowed",
                       "org/other": "model_not_allowed", "org/allowed": "result", f"{models}/fine-tune": "result"}
    vae_jobs = {vae: submit(client, vae=vae) for vae in ("/etc/passwd", "org/allowed")}  # a job's VAE: same rules
    seen = pump([client], all_final(*vae_jobs.values()))
    assert final(seen, vae_jobs["/etc/passwd"])["code"] == "model_not_allowed"
    assert final(seen, vae_jobs["org/allowed"])["type"] == "result"


def test_model_policy_rules(tmp_path):
    folder = tmp_path / "models"
    (folder / "a" / "unet").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (folder / "link").symlink_to(tmp_path / "outside")
    (folder / "linked-unet").mkdir()
    (folder / "linked-unet" / "unet").symlink_to(tmp_path / "outside")  # a model folder whose unet/ is elsewhere
    remote = ModelPolicy.for_daemon("base/model", ("org/ok",), (str(folder),), local=False)
    assert remote.check(None) is None and remote.check("base/model") == "base/model"
    assert remote.check("org/ok") == "org/ok" and remote.check(str(folder / "a")) == str(folder / "a")
    for refused in ("org/nope", str(folder / "link"), str(folder), "relative/path", "~/x", str(folder / "linked-unet"),
                    f"{folder}/a\0/etc/passwd"):
        with pytest.raises(EditError) as err:
            remote.check(refused)
        assert err.value.code == "model_not_allowed" and "--allow-model" in err.value.hint
    local = ModelPolicy.for_daemon("base/model", (), (), local=True)
    assert local.check("/anything/the/user/owns") == "/anything/the/user/owns"
    assert ModelPolicy.for_daemon("base/model", ("org/ok",), (), local=True).allow_any is False


def test_key_commands_validate_their_input(home):
    with pytest.raises(security.KeySetupError, match="40 characters"):
        security.authorize(home, "dave", "not-a-key")
    with pytest.raises(security.KeySetupError, match="usable client name"):
        security.authorize(home, "../evil", zmq.curve_keypair()[0].decode())
    with pytest.raises(security.KeySetupError, match="keys list"):
        security.revoke(home, "nobody")
    first = security.create_server_keys(home)
    assert security.create_server_keys(home) == first  # kept
    assert security.create_server_keys(home, force=True) != first
    secret_file = security.server_key_files(home)[1]
    assert secret_file.stat().st_mode & 0o077 == 0


def test_the_cli_reaches_a_secure_daemon_with_a_key_file(secure_daemon, home, tmp_path, monkeypatch, capsys):
    from dragedit import cli

    monkeypatch.setenv("DRAGEDIT_HOME", str(home.root))
    key_file = tmp_path / "artist.key_secret"
    assert cli.main(["keys", "new-client", "artist", "--out", str(key_file)]) == 0
    server_key = security.load_server_keys(home)[0].decode()
    capsys.readouterr()
    status = ["status", "--endpoint", secure_daemon.test_endpoint, "--timeout", "20", "--server-key", server_key]
    assert cli.main([*status, "--client-key-file", str(key_file)]) == 0
    assert "CurveZMQ" in capsys.readouterr().out
    assert cli.main(status) == cli.EXIT_USAGE  # a server key without a key pair
    assert "--client-key-file" in capsys.readouterr().err


def test_plugin_session_reaches_a_keyed_daemon_through_the_environment(secure_daemon, home, tmp_path, monkeypatch):
    import zmq.auth

    from dragedit_protocol.editor.errors import UserError
    from dragedit_protocol.editor.session import client_factory

    public, secret = security.new_client(home, "plugin")
    key_file = tmp_path / "plugin.key_secret"
    key_file.write_text(f'metadata\ncurve\n    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n')
    assert zmq.auth.load_certificate(str(key_file))[1] == secret
    make = client_factory("test-plugin", "0")

    monkeypatch.setenv("DRAGEDIT_SERVER_KEY", security.load_server_keys(home)[0].decode())
    monkeypatch.setenv("DRAGEDIT_CLIENT_KEY_FILE", str(key_file))
    client = make(secure_daemon.test_endpoint)
    try:
        assert ready(client)["secure"] is True
    finally:
        client.close()

    monkeypatch.delenv("DRAGEDIT_CLIENT_KEY_FILE")  # half a configuration: a sentence, not a traceback
    with pytest.raises(UserError) as err:
        make(secure_daemon.test_endpoint)
    assert "DRAGEDIT_CLIENT_KEY_FILE" in str(err.value) + err.value.hint


OTHER_USER_SCRIPT = r"""
import json, sys, time
from dragedit_protocol.client import DaemonClient
endpoint, home = sys.argv[1], sys.argv[2]
try:
    open(home + "/keys/local-client.key_secret").read()
    keys = "readable"
except OSError as exc:
    keys = type(exc).__name__
client = DaemonClient(endpoint, client="intruder", client_version="0", data_folder=home, timeout_s=4)
client.request_status()
got = []
deadline = time.monotonic() + 4
while time.monotonic() < deadline:
    got += [m["type"] for m in client.poll(50)]
print(json.dumps({"keys": keys, "received": got}))
"""


def test_another_os_user_cannot_reach_a_local_daemon(start_daemon, connect):
    """A real second process running as 'nobody' (setpriv) on the same machine and loopback port, with
    the data folder's parents open to it, as a home folder often is."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    from dragedit.config import Paths

    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run a process as another user")
    parent = Path(tempfile.mkdtemp(prefix="dragedit-other-user-"))
    try:
        parent.chmod(0o755)
        home = Paths(parent / "home").make()
        daemon = start_daemon(paths=home)
        owner = connect(daemon.bound_endpoint, data_folder=home.root)
        ready(owner)
        job_id = submit(owner, params={"steps": 200, "step_s": 0.02})
        pump([owner], lambda seen: any(m["type"] == "progress" for m in seen))
        run = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", sys.executable,
                              "-c", OTHER_USER_SCRIPT, daemon.bound_endpoint, str(home.root)],
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"keys": "PermissionError", "received": []}
        assert (home.keys.stat().st_mode & 0o077) == 0 and (home.root.stat().st_mode & 0o077) == 0
        assert final(pump([owner], all_final(job_id)), job_id)["type"] == "result"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_another_key_using_a_clients_routing_id_gets_nothing_of_its_jobs(secure_daemon, home, connect):
    from dragedit_protocol import messages

    alice = client_with(home, secure_daemon, security.new_client(home, "alice"), connect)
    ready(alice)
    job_id = submit(alice, params={"steps": 60, "step_s": 0.02})
    pump([alice], lambda seen: any(m["type"] == "progress" for m in seen))
    mallory_public, mallory_secret = security.new_client(home, "mallory")
    thief = zmq.Context.instance().socket(zmq.DEALER)
    thief.setsockopt(zmq.LINGER, 0)
    thief.setsockopt(zmq.ROUTING_ID, alice._routing_id)  # the routing id alice chose
    thief.curve_serverkey = security.load_server_keys(home)[0]
    thief.curve_publickey, thief.curve_secretkey = mallory_public, mallory_secret
    thief.connect(secure_daemon.test_endpoint)
    stolen, seen = [], []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            thief.send(messages.encode(messages.ping()), zmq.NOBLOCK)
            seen += alice.poll(20)
            while thief.poll(20):
                stolen.append(messages.decode_daemon(thief.recv()))
        if final(seen, job_id) is None:
            seen += pump([alice], all_final(job_id))
    finally:
        thief.close()
    assert [m for m in stolen if m.get("job_id") == job_id] == []
    assert final(seen, job_id)["type"] == "result"


def test_a_job_id_of_another_key_is_not_revealed(secure_daemon, home, connect):
    alice = client_with(home, secure_daemon, security.new_client(home, "alice"), connect)
    mallory = client_with(home, secure_daemon, security.new_client(home, "mallory"), connect)
    ready(alice), ready(mallory)
    job_id = submit(alice, params={"steps": 30, "step_s": 0.02})
    mallory.request_status()
    status = pump([mallory], lambda seen: any(m["type"] == "status" for m in seen))[-1]
    assert status["running"] is None or status["running"]["job_id"] is None  # not alice's id
    assert submit(mallory, job_id=job_id) == job_id  # a separate job of mallory's, not 'duplicate_job'
    seen = pump([alice, mallory], lambda seen: all(
        final([m for m in seen if m["_client"] == c], job_id) is not None for c in (0, 1)))
    assert [final([m for m in seen if m["_client"] == c], job_id)["type"] for c in (0, 1)] == ["result", "result"]


def test_secret_files_and_the_data_folder_end_up_private(tmp_path, monkeypatch, capsys):
    from dragedit import cli

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    monkeypatch.setenv("DRAGEDIT_HOME", str(home))
    key_file = tmp_path / "studio.key_secret"
    key_file.write_text("old\n")
    key_file.chmod(0o644)
    assert cli.main(["keys", "new-client", "studio", "--out", str(key_file)]) == 0
    assert key_file.stat().st_mode & 0o777 == 0o600 and "secret-key" in key_file.read_text()
    assert home.stat().st_mode & 0o777 == 0o700
    link = tmp_path / "link.key_secret"
    link.symlink_to(tmp_path / "elsewhere")
    assert cli.main(["keys", "new-client", "other", "--out", str(link)]) == cli.EXIT_USAGE
    assert "cannot write" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()


def test_serve_with_a_malformed_endpoint_says_how_to_write_one(tmp_path, monkeypatch, capsys):
    from dragedit import cli

    monkeypatch.setenv("DRAGEDIT_HOME", str(tmp_path / "home"))
    assert cli.main(["serve", "--endpoint", "tcp://[127.0.0.1]:5555"]) == cli.EXIT_USAGE
    assert "IPv6 address only" in capsys.readouterr().err


def test_a_client_started_before_the_daemon_picks_up_the_keys_it_creates(start_daemon, connect, home):
    """The plug-ins connect first and start the daemon when nobody answers: the keys appear later."""
    from dragedit.daemon.process import free_local_endpoint

    endpoint = free_local_endpoint()
    client = connect(endpoint, timeout_s=10.0)
    assert not (home.keys / "local-client.key_secret").exists()
    client.poll(50)
    start_daemon(endpoint=endpoint)
    assert ready(client)["secure"] is True
