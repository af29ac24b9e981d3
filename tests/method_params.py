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


def masked_request(method: str, seed: int | None = 7, **extra):
    """A 120 x 90 random layer with a selection and one drag, at the method's FAST_PARAMS."""
    from dragedit.engine import DragRequest

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 4), dtype=np.uint8)
    image[..., 3] = 255
    mask = np.zeros((90, 120), np.uint8)
    mask[20:70, 30:90] = 255
    return DragRequest(image=image, mask=mask, points=[((45.0, 40.0), (70.0, 50.0))], method=method,
                       params=dict(FAST_PARAMS[method], **extra), seed=seed, preview_every=1)
