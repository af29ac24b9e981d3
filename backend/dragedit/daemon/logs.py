"""The daemon's logging: a rotating file in the user data folder and stderr."""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: Path, verbose: bool = False) -> None:
    """Send the ``dragedit`` loggers to ``log_file`` (1 MB x 5 files) and to stderr."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("dragedit")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1024 * 1024, backupCount=5, encoding="utf-8")
    stderr_handler = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
