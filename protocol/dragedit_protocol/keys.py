"""CurveZMQ keys of a client, for a daemon on another machine.

The daemon's public key (z85 text) and this client's key pair file (from ``dragedit keys
new-client NAME --out FILE``) come from ``--server-key`` / ``--client-key-file`` on the command line,
or from the environment variables DRAGEDIT_SERVER_KEY / DRAGEDIT_CLIENT_KEY_FILE (the plug-ins read
these, like DRAGEDIT_ENDPOINT).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


class KeysError(ValueError):
    """Keys that cannot be used, with what to do."""


@dataclass(frozen=True)
class CurveKeys:
    server_public_key: bytes | None = None
    client_public_key: bytes | None = None
    client_secret_key: bytes | None = None


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
