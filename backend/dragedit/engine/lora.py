"""LoRA adapters on the UNet's attention projections (peft), their training and their storage."""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Callable

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from .features import UNetRunner
from .latents import Posterior

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]


def add_lora(unet, name: str, rank: int, generator: torch.Generator | None = None) -> None:
    """(Re)create adapter ``name``: rank r, alpha = r, Gaussian A and zero B, fp32 weights.

    peft draws A from the global CPU generator; with ``generator`` that draw is seeded from it
    (and the global state left untouched), so the adapter is reproducible.
    """
    if name in getattr(unet, "peft_config", {}):
        unet.delete_adapters(name)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGET_MODULES)
    if generator is None:
        unet.add_adapter(config, adapter_name=name)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            unet.add_adapter(config, adapter_name=name)
    for pname, param in unet.named_parameters():
        if f".{name}." in pname and "lora_" in pname:
            param.data = param.data.float()
    unet.enable_adapters()  # a job without LoRA disables them; a new adapter must take part again
    unet.set_adapter(name)


def activate_adapter(unet, name: str | None, trainable: bool = False) -> None:
    """Make ``name`` the active adapter (None: the base model alone).

    Unless ``trainable``, its weights are frozen, so a backward pass through the UNet (a latent being
    optimised) computes no LoRA gradients. Switches layer by layer over a list of the LoRA layers
    found once: the UNet-wide set_adapter/enable_adapters walk every module each time, which cost
    more than the UNet pass itself where DragLoRA switches adapters twice per step.
    """
    layers = _lora_layers(unet)
    if name is None:
        for layer in layers:
            layer.enable_adapters(False)
        return
    if name not in getattr(unet, "peft_config", {}):
        raise ValueError(f"the UNet has no adapter named '{name}'")
    for layer in layers:
        if layer.disable_adapters:
            layer.enable_adapters(True)
        layer.set_adapter(name, inference_mode=not trainable)


_LORA_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lora_layers(unet) -> list:
    """The UNet's peft-wrapped layers, looked up again only when its set of adapters changed."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapters = tuple(getattr(unet, "peft_config", {}))
    cached = _LORA_LAYERS.get(unet)
    if cached is None or cached[0] != adapters:
        cached = (adapters, [m for m in unet.modules() if isinstance(m, BaseTunerLayer)])
        _LORA_LAYERS[unet] = cached
    return cached[1]


def copy_adapter(unet, source: str, target: str, rank: int) -> None:
    """Make adapter ``target`` a copy of ``source``: in place when it already exists with this rank
    (no peft re-injection, which walks the whole UNet), otherwise created first."""
    config = getattr(unet, "peft_config", {}).get(target)
    if config is None or config.r != rank:
        add_lora(unet, target, rank)
    with torch.no_grad():
        for layer in _lora_layers(unet):
            for weights in (layer.lora_A, layer.lora_B):
                if source in weights:
                    weights[target].weight.copy_(weights[source].weight)


def lora_parameters(unet, name: str) -> list[torch.nn.Parameter]:
    return [p for n, p in unet.named_parameters() if f".{name}." in n and "lora_" in n]


def lora_state(unet, name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights, detached and cloned (keys without the adapter name)."""
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(unet, adapter_name=name).items()}


def load_lora_state(unet, name: str, state: dict[str, torch.Tensor], rank: int) -> None:
    """Create adapter ``name`` and fill it with ``state``."""
    add_lora(unet, name, rank)
    device = next(unet.parameters()).device
    set_peft_model_state_dict(unet, {k: v.to(device, torch.float32) for k, v in state.items()}, adapter_name=name)
    unet.set_adapter(name)


def save_lora(state: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.contiguous().cpu() for k, v in state.items()}, str(path))


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


RECON_RECIPE = "posterior-sample"  # what RecLoRA training fits (in the cache key: other recipes are not reused)


def train_reconstruction_lora(runner: UNetRunner, scheduler, posterior: Posterior, emb: torch.Tensor, name: str,
                              rank: int, steps: int, lr: float, batch: int, generator: torch.Generator,
                              on_step: Callable[[int, int], None] | None = None) -> dict[str, torch.Tensor]:
    """Fine-tune a fresh LoRA so the UNet reconstructs this image (epsilon-MSE, random timesteps).

    Each step's batch holds fresh draws of the image's VAE posterior, as in the authors' training
    (the working image already is the resized crop, so the reference's resize + random crop to the
    working size is the identity), with independent noise and timesteps uniform in
    [0, num_train_timesteps). Everything random comes from ``generator``.
    """
    unet = runner.unet
    add_lora(unet, name, rank, generator)
    params = lora_parameters(unet, name)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr)
    scaler = runner.grad_scaler()
    num_train = scheduler.config.num_train_timesteps
    device = posterior.mean.device
    try:
        for step in range(steps):
            latents = posterior.sample(batch, generator)
            noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(device)
            t = torch.randint(0, num_train, (batch,), generator=generator, device=generator.device).to(device)
            noisy = scheduler.add_noise(latents, noise, t)
            loss = torch.nn.functional.mse_loss(runner.eps(noisy, t, emb), noise)
            runner.step(loss, optimizer, scaler)
            if on_step:
                on_step(step + 1, steps)
    finally:
        optimizer.zero_grad(set_to_none=True)
        for p in params:
            p.requires_grad_(False)
    return lora_state(unet, name)
