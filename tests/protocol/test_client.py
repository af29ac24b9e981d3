"""DaemonClient against a scripted ROUTER socket: states, heartbeats, restarts, version checks."""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from dragedit_protocol import messages
from dragedit_protocol.client import DaemonClient
from dragedit_protocol.messages import PROTOCOL_VERSION


class ScriptedDaemon:
    """A bare ROUTER socket the test answers by hand."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:*"):
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def receive(self, client: DaemonClient, kind: str, timeout_s: float = 5.0) -> tuple[bytes, dict]:
        """Poll the client (so it sends) until a message of ``kind`` reaches us."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            client.poll(10)
            if self.socket.poll(10):
                peer, data = self.socket.recv_multipart()
                message = msgpack.unpackb(data, raw=False)
                if message["type"] == kind:
                    return peer, message
        raise AssertionError(f"no {kind} arrived")

    def send(self, peer: bytes, message: dict, version: int = PROTOCOL_VERSION) -> None:
        self.socket.send_multipart([peer, msgpack.packb({**message, "v": version}, use_bin_type=True)])

    def close(self) -> None:
        self.socket.close(linger=0)


def welcome(instance: str = "first", protocol: int = PROTOCOL_VERSION) -> dict:
    return {"type": "welcome", "daemon_version": "0.1.0", "protocol": protocol, "instance": instance,
            "state": "ready", "methods": [], "limits": messages.DEFAULT_LIMITS.as_dict()}


def until(client: DaemonClient, condition, timeout_s: float = 5.0) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += client.poll(10)
        if condition(seen):
            return seen
    raise AssertionError(f"condition not reached; state {client.state}, messages {seen}")


@pytest.fixture
def daemon():
    scripted = ScriptedDaemon()
    yield scripted
    scripted.close()


@pytest.fixture
def make_client():
    clients = []

    def make(endpoint: str, **options) -> DaemonClient:
        options.setdefault("heartbeat_interval_s", 0.1)
        options.setdefault("timeout_s", 1.0)
        client = DaemonClient(endpoint, client="test-plugin", client_version="9.9", editor="krita",
                              editor_version="5.1.5", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def connect(daemon: ScriptedDaemon, client: DaemonClient, instance: str = "first") -> bytes:
    peer, hello = daemon.receive(client, "hello")
    assert hello == {"v": PROTOCOL_VERSION, "type": "hello", "client": "test-plugin", "client_version": "9.9",
                     "editor": "krita", "editor_version": "5.1.5"}
    daemon.send(peer, welcome(instance))
    until(client, lambda seen: any(m["type"] == "welcome" for m in seen))
    return peer


def rgba(width: int, height: int) -> bytes:
    return bytes(width * height * 4)


def test_hello_then_welcome_makes_the_client_ready(daemon, make_client):
    client = make_client(daemon.endpoint)
    assert client.state == "connecting" and client.welcome is None
    connect(daemon, client)
    assert client.state == "ready" and client.welcome["instance"] == "first" and client.error_text == ""


def test_no_daemon_makes_the_client_unreachable_with_a_sentence_to_show(make_client):
    client = make_client("tcp://127.0.0.1:9", timeout_s=0.3)  # nothing listens on the discard port
    until(client, lambda _: client.state == "unreachable", timeout_s=3)
    assert "tcp://127.0.0.1:9" in client.error_text and "dragedit serve" in client.error_text


def test_a_daemon_that_stops_answering_is_noticed_and_a_pong_brings_it_back(daemon, make_client):
    client = make_client(daemon.endpoint, timeout_s=0.5)
    peer = connect(daemon, client)
    until(client, lambda _: client.state == "unreachable", timeout_s=3)  # the script ignores the pings
    _, ping = daemon.receive(client, "ping")
    assert ping["type"] == "ping"
    daemon.send(peer, messages.pong("first"))
    until(client, lambda _: client.state == "ready")


def test_a_pong_from_a_new_instance_makes_the_client_say_hello_again(daemon, make_client):
    client = make_client(daemon.endpoint)
    peer = connect(daemon, client)
    daemon.receive(client, "ping")
    daemon.send(peer, messages.pong("second"))
    daemon.receive(client, "hello")


def test_after_a_restart_unfinished_jobs_are_fetched_and_reported_clearly(daemon, make_client):
    client = make_client(daemon.endpoint)
    peer = connect(daemon, client)
    job_id = client.submit("dragdiffusion", rgba(4, 4), 4, 4, [(0, 0, 3, 3)])
    _, submitted = daemon.receive(client, "submit")
    assert submitted["job_id"] == job_id and client.outstanding == {job_id}
    daemon.send(peer, welcome("restarted"))  # what a restarted daemon answers to the next hello
    _, fetch = daemon.receive(client, "fetch")
    assert fetch["job_id"] == job_id
    daemon.send(peer, messages.error("unknown_job", "no such job", "", job_id))
    seen = until(client, lambda seen: any(m["type"] == "error" for m in seen))
    error = next(m for m in seen if m["type"] == "error")
    assert error["code"] == "daemon_restarted" and job_id in error["message"]
    assert client.outstanding == frozenset()


def test_a_result_ends_the_job(daemon, make_client):
    client = make_client(daemon.endpoint)
    peer = connect(daemon, client)
    job_id = client.submit("dragdiffusion", rgba(2, 2), 2, 2, [(0, 0, 1, 1)])
    daemon.receive(client, "submit")
    daemon.send(peer, messages.queued(job_id, 1))
    daemon.send(peer, messages.result(job_id, rgba(2, 2), 2, 2, [(1, 1)], {"drag": 0.1}, 5, {}))
    seen = until(client, lambda seen: any(m["type"] == "result" for m in seen))
    assert [m["type"] for m in seen] == ["queued", "result"]
    assert seen[1]["image"]["data"] == rgba(2, 2) and client.outstanding == frozenset()


def test_cancel_fetch_and_status_are_sent(daemon, make_client):
    client = make_client(daemon.endpoint)
    connect(daemon, client)
    client.cancel("job-a")
    assert daemon.receive(client, "cancel")[1]["job_id"] == "job-a"
    client.fetch("job-b")
    assert daemon.receive(client, "fetch")[1]["job_id"] == "job-b"
    client.request_status()
    daemon.receive(client, "status")


def test_an_invalid_submit_comes_back_as_an_error_without_reaching_the_daemon(daemon, make_client):
    client = make_client(daemon.endpoint)
    connect(daemon, client)
    job_id = client.submit("dragdiffusion", rgba(4, 4), 4, 4, [(0, 0, 9, 9)])  # target outside the image
    seen = until(client, lambda seen: bool(seen))
    assert seen[0]["type"] == "error" and seen[0]["code"] == "point_outside" and seen[0]["job_id"] == job_id
    client.request_status()
    _, first = daemon.receive(client, "status")  # the submit was never sent: the next thing is the status
    assert first["type"] == "status" and job_id not in client.outstanding


@pytest.mark.parametrize("reply", [
    lambda peer, daemon: daemon.send(peer, welcome(), version=PROTOCOL_VERSION + 1),
    lambda peer, daemon: daemon.send(peer, welcome(protocol=PROTOCOL_VERSION + 1)),
])
def test_a_daemon_of_another_version_makes_the_client_incompatible(daemon, make_client, reply):
    client = make_client(daemon.endpoint)
    peer, _ = daemon.receive(client, "hello")
    reply(peer, daemon)
    until(client, lambda _: client.state == "incompatible")
    assert "install.py" in client.error_text


def test_fileno_is_a_stable_descriptor(daemon, make_client):
    client = make_client(daemon.endpoint)
    before = client.fileno()
    connect(daemon, client)
    assert isinstance(before, int) and client.fileno() == before
    client.close()
    with pytest.raises(ValueError):
        client.fileno()
    assert client.poll() == []


def test_the_client_reconnects_to_a_daemon_started_later_on_the_same_address(make_client):
    first = ScriptedDaemon()
    endpoint = first.endpoint
    client = make_client(endpoint, timeout_s=0.5)
    connect(first, client, "first")
    first.close()
    until(client, lambda _: client.state == "unreachable", timeout_s=5)
    second = ScriptedDaemon(endpoint)
    try:
        peer, _ = second.receive(client, "hello", timeout_s=10)
        second.send(peer, welcome("second"))
        until(client, lambda _: client.state == "ready" and client.welcome["instance"] == "second")
    finally:
        second.close()
