"""Test helper: a diffusers SD-1.5-layout model written as ONE checkpoint in the original LDM key layout.

Users' fine-tunes come as a single ``.safetensors`` file with the CompVis names
(``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*``). This
module maps a diffusers folder's UNet, VAE and CLIP text encoder onto those names, so a test can
load such a file through the same code path a user's checkpoint takes and compare it with the
folder it came from.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer.text_model."

Rules = list[tuple[str, Callable[[re.Match], str]]]  # (diffusers key pattern, LDM key of a match)

# The names of a UNet residual block's layers, diffusers -> LDM (ResBlock).
UNET_RESNET_LAYERS = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}
# UNet layers outside the levels, diffusers -> LDM.
UNET_OUTER_LAYERS = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                     "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
# VAE residual blocks keep diffusers' names except the shortcut.
VAE_RESNET_LAYERS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
                     "conv_shortcut": "nin_shortcut"}
# The names of the VAE mid-block attention's layers, diffusers -> LDM (AttnBlock, 1x1 convolutions).
VAE_ATTENTION_LAYERS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _layer(rest: str, names: dict[str, str]) -> str:
    """Rename the leading layer name of ``rest`` (e.g. "conv1.weight") through ``names``."""
    for new, old in names.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(f"no LDM name for layer '{rest}'")


def _rename(state: dict[str, torch.Tensor], rules: Rules, part: str) -> dict[str, torch.Tensor]:
    """Every key renamed by the first rule whose pattern matches it all; an unmatched key is an error."""
    converted = {}
    for key, tensor in state.items():
        match = next(((m, rename) for pattern, rename in rules if (m := re.fullmatch(pattern, key))), None)
        if match is None:
            raise KeyError(f"no LDM name for {part} weight '{key}'")
        converted[match[1](match[0])] = tensor
    return converted


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel weights -> the LDM UNetModel names (without the checkpoint prefix).

    LDM numbers the UNet's steps in one flat list per direction: input_blocks[0] is conv_in, then
    each down level has ``layers_per_block`` (resnet, attention) steps and one downsampler step;
    output_blocks has ``layers_per_block + 1`` steps per up level, the last one also upsampling
    (after the attention when the level has one).
    """
    steps = layers_per_block + 1
    up_attention = {int(m[1]) for key in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", key))}
    outer = "|".join(re.escape(name) for name in UNET_OUTER_LAYERS)
    rules: Rules = [
        (rf"({outer})\.(weight|bias)", lambda m: f"{UNET_OUTER_LAYERS[m[1]]}.{m[2]}"),
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
         lambda m: f"input_blocks.{1 + int(m[1]) * steps + int(m[2])}.0.{_layer(m[3], UNET_RESNET_LAYERS)}"),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)",
         lambda m: f"input_blocks.{1 + int(m[1]) * steps + int(m[2])}.1.{m[3]}"),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)",
         lambda m: f"input_blocks.{(int(m[1]) + 1) * steps}.0.op.{m[2]}"),
        (r"mid_block\.resnets\.(\d+)\.(.+)",
         lambda m: f"middle_block.{2 * int(m[1])}.{_layer(m[2], UNET_RESNET_LAYERS)}"),
        (r"mid_block\.attentions\.0\.(.+)", lambda m: f"middle_block.1.{m[1]}"),
        (r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
         lambda m: f"output_blocks.{int(m[1]) * steps + int(m[2])}.0.{_layer(m[3], UNET_RESNET_LAYERS)}"),
        (r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)",
         lambda m: f"output_blocks.{int(m[1]) * steps + int(m[2])}.1.{m[3]}"),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)",
         lambda m: f"output_blocks.{(int(m[1]) + 1) * steps - 1}.{2 if int(m[1]) in up_attention else 1}.conv.{m[2]}"),
    ]
    return _rename(state, rules, "UNet")


def vae_to_ldm(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """AutoencoderKL weights -> the LDM AutoencoderKL names (without the checkpoint prefix).

    The decoder's up levels are numbered from the lowest resolution in diffusers and from the
    highest in LDM; the mid-block attention is linear in diffusers and 1x1 convolutions in LDM.
    """
    rules: Rules = [
        (r"(encoder|decoder)\.conv_norm_out\.(.+)", lambda m: f"{m[1]}.norm_out.{m[2]}"),
        (r"((encoder|decoder)\.)?(conv_in|conv_out|quant_conv|post_quant_conv)\.(weight|bias)", lambda m: m[0]),
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
         lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{_layer(m[3], VAE_RESNET_LAYERS)}"),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)",
         lambda m: f"encoder.down.{m[1]}.downsample.conv.{m[2]}"),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{_layer(m[3], VAE_RESNET_LAYERS)}"),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"),
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)",
         lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.{_layer(m[3], VAE_RESNET_LAYERS)}"),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)",
         lambda m: f"{m[1]}.mid.attn_1.{_layer(m[2], VAE_ATTENTION_LAYERS)}"),
    ]
    converted = _rename(state, rules, "VAE")
    for key, tensor in converted.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and tensor.ndim == 2:
            converted[key] = tensor[:, :, None, None]  # linear (out, in) -> 1x1 conv (out, in, 1, 1)
    return converted


def text_encoder_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel weights -> the names under ``cond_stage_model.transformer.text_model.``.

    LDM wrapped transformers' CLIPTextModel, whose weights then sat under ``text_model.``;
    newer transformers drop that level, so it is removed here when present and added back by the prefix.
    """
    return {key.removeprefix("text_model."): tensor for key, tensor in state.items()}


def write_ldm_checkpoint(model_dir: str | Path, path: str | Path) -> Path:
    """Write the UNet, VAE and text encoder of a diffusers folder as one LDM-layout ``.safetensors`` file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae")
    text_encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder")
    checkpoint = {}
    for prefix, part in (
        (UNET_PREFIX, unet_to_ldm(unet.state_dict(), unet.config.layers_per_block)),
        (VAE_PREFIX, vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))),
        (TEXT_PREFIX, text_encoder_to_ldm(text_encoder.state_dict())),
    ):
        checkpoint.update({prefix + key: tensor.contiguous() for key, tensor in part.items()})
    path = Path(path)
    save_file(checkpoint, path, metadata={"format": "pt"})
    return path


def add_training_leftovers(path: str | Path, dest: str | Path) -> Path:
    """A copy of an LDM checkpoint with what unpruned SD-1.5 files also carry.

    CLIP's position_ids, the DDPM schedule buffers and an EMA copy of the UNet (LDM's flattened
    names, values perturbed so that a test can tell which copy was loaded).
    """
    checkpoint = load_file(path)
    checkpoint[TEXT_PREFIX + "embeddings.position_ids"] = torch.arange(77)[None]
    for name in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "posterior_variance"):
        checkpoint[name] = torch.linspace(0.0, 1.0, 1000)
    for key in [k for k in checkpoint if k.startswith(UNET_PREFIX)]:
        checkpoint["model_ema." + key[len(UNET_PREFIX):].replace(".", "")] = checkpoint[key] + 0.5
    checkpoint["model_ema.decay"] = torch.tensor(0.9999)
    dest = Path(dest)
    save_file(checkpoint, dest, metadata={"format": "pt"})
    return dest


def copy_configs(model_dir: str | Path, dest: str | Path) -> Path:
    """Copy a diffusers folder without its weights: the configs and tokenizer a single file needs."""
    model_dir, dest = Path(model_dir), Path(dest)
    shutil.copytree(model_dir, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return dest
