"""CurveZMQ keys of a client and where the user's own daemon keeps them.

Every daemon speaks CurveZMQ. When it starts it creates (once) its server key pair and a key pair
for the clients of its own user in ``<data folder>/keys`` (folder 0700, secret files 0600), so
only that OS user can read them: the CLI and the plug-ins on the same machine read them from
there (``local_client_keys``), and other local users cannot connect at all.

A daemon on another machine: its public key (z85 text) and this client's key pair file (from
``dragedit keys new-client NAME --out FILE``) come from ``--server-key`` / ``--client-key-file`` on
the command line, or from DRAGEDIT_SERVER_KEY / DRAGEDIT_CLIENT_KEY_FILE (the plug-ins read these,
like DRAGEDIT_ENDPOINT).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS_FOLDER = "keys"
SERVER_PUBLIC_FILE = "server.key"
LOCAL_CLIENT_FILE = "local-client.key_secret"


class KeysError(ValueError):
    """Keys that cannot be used, with what to do."""


def data_dir() -> Path:
    """The user data folder: $DRAGEDIT_HOME, else $XDG_DATA_HOME/dragedit (not created)."""
    explicit = os.environ.get("DRAGEDIT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "dragedit"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dragedit"


@dataclass(frozen=True)
class CurveKeys:
    server_public_key: bytes | None = None
    client_public_key: bytes | None = None
    client_secret_key: bytes | None = None

    @property
    def complete(self) -> bool:
        return bool(self.server_public_key and self.client_public_key and self.client_secret_key)

    def apply(self, socket: Any) -> None:
        """Make a connecting ZeroMQ socket a CurveZMQ client with these keys (nothing when incomplete)."""
        if self.complete:
            socket.curve_serverkey = self.server_public_key
            socket.curve_publickey = self.client_public_key
            socket.curve_secretkey = self.client_secret_key


def local_client_keys(data_folder: Path | str | None = None) -> CurveKeys:
    """The keys for this user's own daemon, read from ``<data folder>/keys``; empty before the
    daemon first started (or when the folder belongs to another user)."""
    import zmq.auth

    folder = Path(data_folder if data_folder is not None else data_dir()) / KEYS_FOLDER
    try:
        server = zmq.auth.load_certificate(folder / SERVER_PUBLIC_FILE)[0]
        public, secret = zmq.auth.load_certificate(folder / LOCAL_CLIENT_FILE)
    except (OSError, ValueError):
        return CurveKeys()
    return CurveKeys(server, public, secret) if secret else CurveKeys()


def load_client_keys(server_key: str | None, client_key_file: str | None) -> CurveKeys:
    """Both or neither: a server key needs this client's key pair; raises KeysError with a hint."""
    if not server_key and not client_key_file:
        return CurveKeys()
    if not server_key or not client_key_file:
        raise KeysError("a daemon with CurveZMQ keys needs both its public key (DRAGEDIT_SERVER_KEY / --server-key) "
                        "and this client's key pair file (DRAGEDIT_CLIENT_KEY_FILE / --client-key-file; "
                        "create one with: dragedit keys new-client NAME --out FILE)")
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(client_key_file)
    except (OSError, ValueError) as exc:
        raise KeysError(f"cannot read the client key file {client_key_file}: {exc}") from exc
    if not secret:
        raise KeysError(f"{client_key_file} holds no secret key; use the file written by 'dragedit keys new-client --out'")
    return CurveKeys(server_key.strip().encode("ascii"), public, secret)


def client_keys_from_environment() -> CurveKeys:
    """The keys named by DRAGEDIT_SERVER_KEY and DRAGEDIT_CLIENT_KEY_FILE (none when unset)."""
    return load_client_keys(os.environ.get("DRAGEDIT_SERVER_KEY"), os.environ.get("DRAGEDIT_CLIENT_KEY_FILE"))
