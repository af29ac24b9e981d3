"""The DragEdit daemon: one process per user serving every editor window over ZeroMQ."""

from .server import Daemon, DaemonError, DaemonOptions  # noqa: F401
