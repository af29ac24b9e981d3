"""Method parameters for the toy size: the published defaults with the spatial ones scaled down."""
from __future__ import annotations

from typing import Any

from .cases import CASE_SIZE

SD_FEATURE_SIZE = 256  # SD-1.5's feature maps at 512 px, where the published radii were chosen
TOY_SCALE = (CASE_SIZE // 2) / SD_FEATURE_SIZE  # 1/4
# Radii and step lengths in feature pixels: they describe how big content is, so they shrink with the
# feature map. The patch radius stays at least 1 and the search radius at least 3 (DragDiffusion's
# published search radius: anything smaller cannot follow content that moves a pixel per step).
SPATIAL_PARAMS = {"r1": 1, "r2": 3, "beta": 1}


def toy_params(spec: dict[str, Any]) -> dict[str, Any]:
    """A method's published defaults scaled to the toy size: only the spatial ones change."""
    params = {}
    for param in spec["params"]:
        name, default = param["name"], param["default"]
        if name in SPATIAL_PARAMS:
            scaled = max(SPATIAL_PARAMS[name], default * TOY_SCALE)
            params[name] = round(scaled) if param["type"] == "int" else float(scaled)
    return params
