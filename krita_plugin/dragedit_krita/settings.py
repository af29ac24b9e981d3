"""DragEdit's settings in Krita's own settings file (kritarc, group [DragEdit])."""
from __future__ import annotations

from typing import Any

from dragedit_protocol.editor.drag import SOFT_EDGE_PX

GROUP = "DragEdit"
SOURCES = ("layer", "visible")


class Settings:
    """Typed access to the persisted settings; unreadable values fall back to the defaults."""

    def __init__(self, app: Any):
        self._app = app

    def _read(self, key: str, default: str) -> str:
        return str(self._app.readSetting(GROUP, key, default))

    def _write(self, key: str, value: str) -> None:
        self._app.writeSetting(GROUP, key, value)

    @property
    def endpoint(self) -> str:
        """The daemon endpoint the artist typed ('' = the installed default)."""
        return self._read("endpoint", "").strip()

    @endpoint.setter
    def endpoint(self, value: str) -> None:
        self._write("endpoint", value.strip())

    @property
    def model(self) -> str:
        """The model drags ask for: '' = the daemon's own, 'toy' = the demo model, else a file, folder or hub id."""
        return self._read("model", "").strip()

    @model.setter
    def model(self, value: str) -> None:
        self._write("model", value.strip())

    @property
    def params_json(self) -> str:
        return self._read("params", "")

    @params_json.setter
    def params_json(self, value: str) -> None:
        self._write("params", value)

    @property
    def soft_edge(self) -> int:
        """Pixels over which the result fades into the source at the selection's edge."""
        try:
            return max(0, min(200, int(self._read("soft_edge", str(SOFT_EDGE_PX)))))
        except ValueError:
            return SOFT_EDGE_PX

    @soft_edge.setter
    def soft_edge(self, value: int) -> None:
        self._write("soft_edge", str(int(value)))

    @property
    def source(self) -> str:
        value = self._read("source", "layer")
        return value if value in SOURCES else "layer"

    @source.setter
    def source(self, value: str) -> None:
        self._write("source", value if value in SOURCES else "layer")

    @property
    def live_preview(self) -> bool:
        return self._read("live_preview", "true") == "true"

    @live_preview.setter
    def live_preview(self, value: bool) -> None:
        self._write("live_preview", "true" if value else "false")
