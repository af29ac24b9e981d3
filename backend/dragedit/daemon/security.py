"""CurveZMQ on every daemon socket: keys, authorised clients, the ZAP handler.

Files (ZeroMQ certificate format) in ``<data folder>/keys`` (mode 700):
``server.key`` (public) and ``server.key_secret`` (secret, mode 600), created by the first
daemon; ``local-client.key_secret`` (mode 600), the key pair of this user's own clients (the CLI
and the plug-ins on this machine read it, other OS users cannot); and one ``authorized/<name>.key``
per other machine's client public key allowed in. The authorised folder is read at each
handshake, so adding or revoking a client takes effect without a restart.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.utils import z85
from zmq.auth.thread import ThreadAuthenticator

from dragedit_protocol.keys import LOCAL_CLIENT_FILE, SERVER_PUBLIC_FILE

from ..config import Paths

log = logging.getLogger(__name__)

ZAP_DOMAIN = "dragedit"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeySetupError(Exception):
    """A key operation that cannot be done; the message says what to do instead."""


class EndpointError(ValueError):
    """An endpoint that is not a ZeroMQ address the daemon can use; the message says how to write one."""


ENDPOINT_FORM = "write it like tcp://127.0.0.1:48611, tcp://[::1]:48611 or ipc:///path/to/socket"


def check_endpoint(endpoint: str) -> str:
    """The endpoint when it is tcp://HOST:PORT (HOST an address in brackets for IPv6, a name or '*';
    PORT a number or '*') or ipc://PATH; EndpointError saying what is wrong otherwise."""
    scheme, sep, rest = endpoint.partition("://")
    if scheme == "ipc" and sep and rest:
        return endpoint
    if scheme != "tcp" or not sep:
        raise EndpointError(f"'{endpoint}' is not a daemon address: {ENDPOINT_FORM}")
    host, _, port = rest.rpartition(":")
    if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        raise EndpointError(f"'{endpoint}' has no valid port (1-65535 or *) after the last ':': {ENDPOINT_FORM}")
    if host.startswith("[") or host.endswith("]"):
        try:
            if not (host.startswith("[") and host.endswith("]")) or ipaddress.ip_address(host[1:-1]).version != 6:
                raise ValueError(host)
        except ValueError:
            raise EndpointError(f"'{endpoint}': brackets hold an IPv6 address only, like [::1]; "
                                f"an IPv4 address goes without them: {ENDPOINT_FORM}") from None
    elif not host or any(c in host for c in "[]/@ "):
        raise EndpointError(f"'{endpoint}' has no valid host before the port: {ENDPOINT_FORM}")
    return endpoint


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address or 'localhost'."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    try:
        host = urlsplit(f"tcp://{rest}").hostname or ""
    except ValueError:  # not an address at all: check_endpoint says why
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name or a host name: may be reachable from outside
        return False


def server_key_files(paths: Paths) -> tuple[Path, Path]:
    return paths.keys / SERVER_PUBLIC_FILE, paths.keys / "server.key_secret"


def local_client_file(paths: Paths) -> Path:
    return paths.keys / LOCAL_CLIENT_FILE


def load_server_keys(paths: Paths) -> tuple[bytes, bytes] | None:
    """(public, secret) z85 keys of this daemon, or None when not created yet."""
    _, secret_file = server_key_files(paths)
    if not secret_file.exists():
        return None
    public, secret = zmq.auth.load_certificate(secret_file)
    if not secret:
        raise KeySetupError(f"{secret_file} holds no secret key; recreate it with: dragedit keys server --force")
    return public, secret


def create_server_keys(paths: Paths, force: bool = False) -> bytes:
    """Create the server key pair (kept if it exists, unless ``force``); returns the public key."""
    paths.make()
    existing = None if force else load_server_keys(paths)
    if existing is not None:
        return existing[0]
    public_file, secret_file = zmq.auth.create_certificates(paths.keys, "server")
    os.chmod(secret_file, 0o600)
    return zmq.auth.load_certificate(public_file)[0]


def ensure_local_keys(paths: Paths) -> bytes:
    """Create (once) the server key pair and the key pair of this user's own clients; returns the
    local clients' public key."""
    create_server_keys(paths)
    key_file = local_client_file(paths)
    try:
        public, secret = zmq.auth.load_certificate(key_file)
        if secret:
            return public
    except (OSError, ValueError):
        pass
    public, secret = zmq.curve_keypair()
    write_key_pair(key_file, public, secret, "DragEdit: the key pair of this user's own clients (keep it private)")
    return public


def write_key_pair(path: Path, public: bytes, secret: bytes, title: str) -> None:
    """A ZeroMQ certificate file with a key pair, readable only by its owner whatever was there before
    (a link there is refused, not followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as handle:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        handle.write(f"# {title}\nmetadata\ncurve\n    public-key = \"{public.decode()}\"\n"
                     f"    secret-key = \"{secret.decode()}\"\n")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeySetupError(f"'{name}' is not a usable client name: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def check_public_key(key: str) -> bytes:
    """A z85 Curve public key (40 characters) as bytes."""
    raw = key.strip().encode("ascii", "replace")
    try:
        if len(raw) != 40 or len(z85.decode(raw)) != 32:
            raise ValueError("wrong length")
    except Exception:  # z85 raises ValueError, KeyError or struct.error on bad text
        raise KeySetupError("a Curve public key is 40 characters of z85 text, as printed by 'dragedit keys new-client'")
    return raw


def authorize(paths: Paths, name: str, public_key: str) -> Path:
    """Let the client with this public key in; returns the key file."""
    paths.make()
    key = check_public_key(public_key).decode("ascii")
    target = paths.authorized_keys / f"{check_name(name)}.key"
    target.write_text(f"# DragEdit authorised client '{name}'\nmetadata\ncurve\n    public-key = \"{key}\"\n")
    return target


def revoke(paths: Paths, name: str) -> None:
    target = paths.authorized_keys / f"{check_name(name)}.key"
    if not target.exists():
        raise KeySetupError(f"no authorised client is called '{name}' (see: dragedit keys list)")
    target.unlink()


def authorized(paths: Paths) -> dict[str, bytes]:
    """name -> public key of every authorised client."""
    out = {}
    for key_file in sorted(paths.authorized_keys.glob("*.key")):
        try:
            out[key_file.stem] = zmq.auth.load_certificate(key_file)[0]
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable key file %s: %s", key_file, exc)
    return out


def new_client(paths: Paths, name: str) -> tuple[bytes, bytes]:
    """Create a key pair for a client machine and authorise its public key; returns (public, secret).
    The secret key is not stored here: hand it to the client (its plug-in settings) and forget it."""
    public, secret = zmq.curve_keypair()
    authorize(paths, name, public.decode("ascii"))
    return public, secret


class AuthorizedKeys:
    """ZAP credentials provider: a client is let in when it has this user's local key, or when its
    key is in the authorised folder now."""

    def __init__(self, paths: Paths, local_key: bytes):
        self.paths = paths
        self.local_key = local_key

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key == self.local_key or key in authorized(self.paths).values()
        if not allowed:
            log.warning("refused a client with an unknown Curve key %s", key.decode("ascii", "replace"))
        return allowed


def secure_socket(context: zmq.Context, socket: zmq.Socket, paths: Paths, local_key: bytes) -> ThreadAuthenticator:
    """Make ``socket`` a CurveZMQ server that only lets this user's local clients (``local_key``, from
    ``ensure_local_keys``) and the authorised clients in; returns the running authenticator (stop it
    when the socket is closed)."""
    keys = load_server_keys(paths)
    auth = ThreadAuthenticator(context, log=logging.getLogger("dragedit.auth"))
    auth.start()
    auth.configure_curve_callback(ZAP_DOMAIN, AuthorizedKeys(paths, local_key))
    socket.zap_domain = ZAP_DOMAIN.encode()
    socket.curve_server = True
    socket.curve_publickey, socket.curve_secretkey = keys
    return auth
