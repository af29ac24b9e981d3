"""Krita test-runner plug-in: runs one test script inside Krita, then exits Krita with its status.

Environment (set by tests/e2e/editors.py run_in_krita):
  DRAGEDIT_E2E_SCRIPT     the Python file to run in Krita's GUI thread; it fails by raising
  DRAGEDIT_E2E_LOG        file the runner appends its log lines to
  DRAGEDIT_E2E_TIMEOUT_S  watchdog: exit 124 when the script has not finished by then
Exit status: 0 passed, 1 the script raised (or an exception escaped a Qt slot), 124 watchdog.
The script's globals hold ``log(message)`` and ``wait_until(predicate, timeout_s, what)``, which
keeps Qt's event loop running while it waits (for asynchronous plug-in work).
Krita is left with os._exit: a normal quit crashes in headless runs.
"""
import os
import sys
import threading
import time
import traceback

from krita import Extension, Krita
try:
    from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
    from PyQt5.QtWidgets import QApplication
except ImportError:  # Krita 6
    from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
    from PyQt6.QtWidgets import QApplication

STARTED = time.monotonic()


def log(message: str) -> None:
    """Print a runner line and append it to $DRAGEDIT_E2E_LOG."""
    line = "[e2e %6.2fs] %s" % (time.monotonic() - STARTED, message)
    print(line, flush=True)
    path = os.environ.get("DRAGEDIT_E2E_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def wait_until(predicate, timeout_s: float = 30.0, what: str = "condition"):
    """Process Qt events until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout_s, what))
        QApplication.processEvents()
        time.sleep(0.02)


def finish(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail_on_uncaught(kind, value, tb) -> None:
    # Krita's own hook opens a modal dialog, which hangs a headless run: fail at once instead.
    log("FAIL: exception outside the script (in a Qt slot)\n" + "".join(traceback.format_exception(kind, value, tb)))
    finish(1)


class _Starter(QObject):
    """Starts the script from a posted event rather than from a timer: under Qt 6, the timers of the
    plug-ins (the DragEdit controller's tick) do not fire in processEvents() called from inside a
    timer's callback, so a script run there would wait for a daemon answer that is never read."""

    start = pyqtSignal()


class E2ERunner(Extension):
    """Arms on start-up when DRAGEDIT_E2E_SCRIPT is set; runs it once the first window exists."""

    def __init__(self, parent):
        super().__init__(parent)
        self.started = False
        self.starter = _Starter()
        self.starter.start.connect(self.run_script, Qt.ConnectionType.QueuedConnection)

    def setup(self):
        if not os.environ.get("DRAGEDIT_E2E_SCRIPT"):
            return
        log("armed")
        Krita.instance().notifier().windowCreated.connect(self.on_window)
        # a thread, not a QTimer: it must fire even when the script blocks the GUI thread
        watchdog = threading.Timer(float(os.environ.get("DRAGEDIT_E2E_TIMEOUT_S", "120")), self.on_timeout)
        watchdog.daemon = True
        watchdog.start()

    def createActions(self, window):
        pass

    def on_timeout(self):
        log("FAIL: watchdog timeout")
        finish(124)

    def on_window(self):
        if not self.started:
            self.started = True
            log("window created")
            QTimer.singleShot(500, self.starter.start.emit)  # let the other plug-ins create their actions

    def run_script(self):
        path = os.environ["DRAGEDIT_E2E_SCRIPT"]
        sys.excepthook = fail_on_uncaught
        namespace = {"__name__": "__dragedit_e2e__", "__file__": path, "log": log, "wait_until": wait_until}
        try:
            with open(path, encoding="utf-8") as f:
                exec(compile(f.read(), path, "exec"), namespace)
        except BaseException:
            log("FAIL\n" + traceback.format_exc())
            finish(1)
        log("PASS")
        finish(0)


Krita.instance().addExtension(E2ERunner(Krita.instance()))
