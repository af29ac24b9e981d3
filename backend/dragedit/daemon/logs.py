"""The daemon's logging: a rotating file in the user data folder and stderr.

Client-supplied text (client names, methods, model names...) reaches the log inside messages, so
every control character of a message is written escaped (``\\n``, ``\\x1b``): one event is one line,
and no client can forge log lines or send escape sequences to a terminal. The daemon's stderr
may be a file on a full disk (the plug-ins' launcher sends it to one): writes that fail are
dropped instead of failing what was being done (a model load showing a progress bar).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control character escaped (a newline becomes the two characters \\n)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class EscapingFormatter(logging.Formatter):
    """Formats the message of a record with its control characters escaped (tracebacks stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class ForgivingStream:
    """A text stream whose writes and flushes never raise OSError (ENOSPC, EIO, a closed pipe)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def setup_logging(log_file: Path, verbose: bool = False) -> None:
    """Send the ``dragedit`` loggers to ``log_file`` (1 MB x 5 files) and to stderr."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("dragedit")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1024 * 1024, backupCount=5, encoding="utf-8")
    stderr_handler = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(EscapingFormatter(FORMAT))
        logger.addHandler(handler)


def quiet_progress_bars() -> None:
    """No download/loading progress bars from the model libraries, and a stderr that cannot fail."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not isinstance(sys.stderr, ForgivingStream):
        sys.stderr = ForgivingStream(sys.stderr)
