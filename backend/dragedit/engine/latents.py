"""VAE encode/decode between working images and latents, and a cheap latent preview."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# A fixed linear map from SD-1.5 latent channels to RGB (approximate colours, no VAE pass).
LATENT_TO_RGB = torch.tensor([
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])


@dataclass(frozen=True)
class Posterior:
    """The VAE's Gaussian posterior of an image in latent units (x scaling factor), fp32, 1 x 4 x h x w."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` independent draws (what the authors' RecLoRA training encodes each step)."""
        noise = torch.randn((batch, *self.mean.shape[1:]), generator=generator, device=generator.device)
        return self.mean + self.std * noise.to(self.mean.device)


@torch.no_grad()
def encode(vae, rgb: np.ndarray, device: torch.device) -> Posterior:
    """H x W x 3 uint8 -> the posterior; its mean is the image latent the drag starts from."""
    dtype = next(vae.parameters()).dtype
    x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
    dist = vae.encode(x.to(device, dtype)).latent_dist
    scale = vae.config.scaling_factor
    return Posterior((dist.mean * scale).float(), (dist.std * scale).float())


@torch.no_grad()
def decode(vae, latent: torch.Tensor) -> np.ndarray:
    """1 x 4 x h x w latent -> H x W x 3 uint8."""
    dtype = next(vae.parameters()).dtype
    image = vae.decode((latent / vae.config.scaling_factor).to(dtype)).sample[0].float()
    return (image.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy())


@torch.no_grad()
def preview(latent: torch.Tensor, max_side: int = 128) -> np.ndarray:
    """A small RGB picture of a latent through LATENT_TO_RGB, stretched to the full 0..255 range."""
    rgb = torch.einsum("chw,cr->hwr", latent[0].float().cpu(), LATENT_TO_RGB)
    lo, hi = rgb.amin(dim=(0, 1)), rgb.amax(dim=(0, 1))
    rgb = ((rgb - lo) / (hi - lo).clamp_min(1e-6) * 255).round().byte().numpy()
    h, w = rgb.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / max_side)))
    return np.ascontiguousarray(rgb[::step, ::step])
