"""Small step counts that let each method run end to end in seconds on a CPU with the tiny model.

Everything not listed keeps its published default. A new method adds itself here (a test checks it).
"""

FAST_PARAMS = {
    "dragdiffusion": {"lora_steps": 3, "drag_steps": 3},
    "gooddrag": {"lora_steps": 3, "operations": 4, "operations_per_step": 2, "gradient_steps": 1},
    "stabledrag": {"lora_steps": 3, "drag_steps": 3, "tracker_iterations": 100},
    "draglora": {"lora_steps": 3, "drag_steps": 3},
}
