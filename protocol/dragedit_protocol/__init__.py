"""DragEdit wire protocol, shared by the daemon and the editor plug-ins (needs msgpack; the client needs pyzmq)."""

from .messages import PROTOCOL_VERSION, ProtocolError, Limits, DEFAULT_LIMITS  # noqa: F401

__version__ = "0.1.0"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:48611"
