"""Small step counts that let each method run end to end in seconds on a CPU with the tiny model.

Everything not listed keeps its published default. A new method adds itself here (a test checks it).
"""
import numpy as np

# uint8 levels two runs of the same request may differ by: float reordering (a cached reference row
# runs alone instead of in a batch of two) may flip a rounding, nothing more
MAX_LEVEL_DIFFERENCE = 2


def same_edit(a: np.ndarray, b: np.ndarray) -> bool:
    """Two result images of the same request agree within MAX_LEVEL_DIFFERENCE levels."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= MAX_LEVEL_DIFFERENCE


FAST_PARAMS = {
    "dragdiffusion": {"lora_steps": 3, "drag_steps": 3},
    "gooddrag": {"lora_steps": 3, "operations": 4, "operations_per_step": 2, "gradient_steps": 1},
    "stabledrag": {"lora_steps": 3, "drag_steps": 3, "tracker_iterations": 100},
    "draglora": {"lora_steps": 3, "drag_steps": 3},
}
