"""Mutual self-attention (MasaCtrl) as a diffusers attention processor.

On the self-attention (attn1) layers of the later up-blocks (SD-1.5: layers 10 to 15, i.e. the attn1
of up_blocks[2] and up_blocks[3]), the edited branch's queries attend to the keys and values of the
original branch; cross-attention is untouched. The reference branch is either row 0 of the same batch
("batch" mode: [original, edited]) or a previous pass whose keys/values were recorded ("record" then
"replay" mode: e.g. DragLoRA's RecLoRA reference with the DragLoRA adapter on the edited pass).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F

FIRST_UP_BLOCK = 2


@dataclass
class MutualAttentionState:
    """Shared by all processors: the mode and the recorded reference keys/values."""

    mode: str = "batch"  # batch | record | replay
    store: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    keep: bool = False  # in batch mode, also store the reference row's keys/values (to cache them)


class MutualSelfAttnProcessor:
    """Self-attention whose keys/values come from the reference branch."""

    def __init__(self, name: str, state: MutualAttentionState):
        self.name = name
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        mode = self.state.mode
        if mode == "batch":
            if self.state.keep:  # copies: a view would hold the whole batch's tensors
                self.state.store[self.name] = (key[:1].detach().clone(), value[:1].detach().clone())
            key, value = key[:1].expand_as(key), value[:1].expand_as(value)
        elif mode == "record":
            self.state.store[self.name] = (key.detach(), value.detach())
        elif mode == "replay":
            key, value = self.state.store[self.name]
            key, value = key[:1].expand(batch, -1, -1), value[:1].expand(batch, -1, -1)
        heads = attn.heads
        head_dim = query.shape[-1] // heads
        q, k, v = (x.reshape(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def mutual_layer_names(unet, first_up_block: int = FIRST_UP_BLOCK) -> list[str]:
    """The attn1 processors of up_blocks[first_up_block:] (SD-1.5: self-attention layers 10..15)."""
    names = []
    for name in unet.attn_processors:
        parts = name.split(".")
        if parts[0] == "up_blocks" and int(parts[1]) >= first_up_block and ".attn1." in name:
            names.append(name)
    return names


@contextmanager
def mutual_attention(unet, state: MutualAttentionState, first_up_block: int = FIRST_UP_BLOCK) -> Iterator[MutualAttentionState]:
    """Install mutual self-attention on the chosen layers for the duration of the block."""
    original = dict(unet.attn_processors)
    chosen = set(mutual_layer_names(unet, first_up_block))
    unet.set_attn_processor({n: (MutualSelfAttnProcessor(n, state) if n in chosen else p) for n, p in original.items()})
    try:
        yield state
    finally:
        unet.set_attn_processor(original)
