"""Check a (toy) model folder: VAE reconstruction, DDIM inversion round trip, samples, feature tracking.

    python -m dragedit.toy.diagnose backend/dragedit/toy/model --out /tmp/toy-check

Prints the numbers and writes check.png (rows: input, VAE reconstruction, inversion to t=681 and
back, the robustness checks, samples from noise).

The latent's channels: their variance along each principal direction over held-out scenes (the
methods' Adam steps move every element about equally, so a direction of little spread is left far).

Robustness: the round trip again with random noise added to the inverted latent, and the scenes noised
afresh to t=681 and denoised (SDEdit). Small losses against the plain round trip mean that a latent
change the size of a drag's does not by itself ruin the image (`python -m dragedit.toy.drift` takes
a real drag's change apart). Then the round trip after DragLoRA's ILFA re-noising repeated as often
as in a drag, with nothing dragged: what that re-noising alone costs.

Feature tracking: for every fixed case, the up_blocks[2] feature at the handle of the input is
searched (L1) in the features of the ground-truth result; the error is how far the best match lands
from the target, in image pixels. Small errors mean the features can guide a drag; the same search
on the images' colours is the baseline (features no better than colour describe no more than it).
Then, for the cases that move whole objects, how well the motion supervision's first Adam step on the
inverted latent points along a one-pixel move of the object's content (cosine; docs/quality.md: near
0 on every toy model trained so far, where the drags do not carry the objects).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..engine.losses import motion_loss
from .cases import DragCase, all_cases
from .drift import content_change
from .scenes import random_images

STRENGTH_STEPS = 35  # inversion strength 0.7 of 50 DDIM steps: t = 681
PERTURBATION = 0.3  # std of the noise added to inverted latents (a drag changes them by ~0.05-0.3 on average)
ILFA_CYCLES = 48  # DragLoRA's ILFA iterations in a typical toy drag (30-80)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).permute(0, 3, 1, 2).float() / 127.5 - 1


def _to_pixels(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def vae_round_trip_db(checker: Checker, count: int, seed: int = 987654) -> tuple[float, float, float]:
    """The VAE round trip (posterior mean) over `count` held-out scenes: PSNR of the pooled error (issue
    #15's measure, 32 scenes), and the lowest and highest PSNR of a single scene."""
    images = random_images(count, seed=seed)
    recon = np.concatenate([_to_pixels(checker.decode(checker.encode(_to_tensor(images[i:i + 8]))))
                            for i in range(0, count, 8)])
    per_scene = [_psnr(image, back) for image, back in zip(images, recon)]
    return _psnr(images, recon), min(per_scene), max(per_scene)


def latent_channel_spread(checker: "Checker", count: int = 64, seed: int = 987654) -> list[float]:
    """The variance of the scaled latents of ``count`` held-out scenes along each principal direction of
    their channels, smallest first (all 1 for a whitened latent). The methods' Adam steps move every
    latent element about equally, so a direction with little spread is left many times its spread."""
    images = random_images(count, seed=seed)
    latents = torch.cat([checker.encode(_to_tensor(images[i:i + 8])) for i in range(0, count, 8)])
    channels = latents.transpose(0, 1).reshape(latents.shape[1], -1)
    return torch.linalg.eigvalsh(torch.cov(channels)).tolist()


class Checker:
    """The pipeline's parts and the DDIM loops the checks need."""

    def __init__(self, folder: Path):
        from diffusers import DDIMInverseScheduler, DDIMScheduler, StableDiffusionPipeline

        self.pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
        self.unet, self.vae = self.pipe.unet, self.pipe.vae
        self.scale = self.vae.config.scaling_factor
        self.context = self.pipe.encode_prompt("", "cpu", 1, False)[0]
        self.forward = DDIMScheduler.from_config(self.pipe.scheduler.config)
        self.inverse = DDIMInverseScheduler.from_config(self.pipe.scheduler.config)
        self.forward.set_timesteps(50)
        self.inverse.set_timesteps(50)
        self.strength_t = int(self.forward.timesteps[len(self.forward.timesteps) - STRENGTH_STEPS])  # 681

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mean * self.scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale).sample

    def _eps(self, z: torch.Tensor, t) -> torch.Tensor:
        return self.unet(z, t, self.context.expand(z.shape[0], -1, -1)).sample

    @torch.no_grad()
    def invert(self, z: torch.Tensor, steps: int = STRENGTH_STEPS) -> torch.Tensor:
        for t in self.inverse.timesteps[:steps]:
            z = self.inverse.step(self._eps(z, t), t, z).prev_sample
        return z

    @torch.no_grad()
    def denoise(self, z: torch.Tensor, steps: int = STRENGTH_STEPS) -> torch.Tensor:
        for t in self.forward.timesteps[len(self.forward.timesteps) - steps:]:
            z = self.forward.step(self._eps(z, t), t, z).prev_sample
        return z

    def features(self, z: torch.Tensor, t: int) -> torch.Tensor:
        """up_blocks[2] output, resized to half the image size (the methods' supervision resolution);
        differentiable when gradients are enabled."""
        captured = {}
        hook = self.unet.up_blocks[2].register_forward_hook(lambda m, i, o: captured.setdefault("f", o))
        try:
            self._eps(z, t)
        finally:
            hook.remove()
        size = z.shape[-1] * self.pipe.vae_scale_factor // 2
        return F.interpolate(captured["f"], size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def noise_prediction_errors(checker: Checker, z: torch.Tensor, timesteps: tuple[int, ...]) -> dict[int, tuple[float, float]]:
    """Per timestep: (MSE of the predicted noise, std of the predicted noise) on freshly noised latents.

    A well-trained model predicts noise of std ~1 at every level (the shipped toy model's is too small at
    low noise; a retrained one with a better low-noise prediction still inverts to the same latent std).
    """
    out = {}
    gen = torch.Generator().manual_seed(1)
    for t in timesteps:
        noise = torch.randn(z.shape, generator=gen)
        noisy = checker.forward.add_noise(z, noise, torch.tensor([t]))
        pred = checker._eps(noisy, t)
        out[t] = (float(F.mse_loss(pred, noise)), float(pred.std()))
    return out


@torch.no_grad()
def perturbed_round_trips(checker: Checker, z: torch.Tensor, inverted: torch.Tensor,
                          sigma: float = PERTURBATION) -> tuple[np.ndarray, np.ndarray]:
    """Images denoised from (inverted latent + N(0, sigma^2)) and from z noised afresh to strength_t."""
    gen = torch.Generator().manual_seed(2)
    perturbed = checker.denoise(inverted + sigma * torch.randn(z.shape, generator=gen))
    fresh = checker.denoise(checker.forward.add_noise(z, torch.randn(z.shape, generator=gen),
                                                      torch.tensor([checker.strength_t])))
    return _to_pixels(checker.decode(perturbed)), _to_pixels(checker.decode(fresh))


@torch.no_grad()
def ilfa_chain(checker: Checker, inverted: torch.Tensor, cycles: int = ILFA_CYCLES) -> np.ndarray:
    """Images denoised after ``cycles`` of DragLoRA's ILFA alone (DDIM step t -> t-20, DDPM re-noise back
    to t, over the whole latent) from the inverted latents: no drag, no learning, only its re-noising."""
    from ..engine.ilfa import adapt_latent

    t = checker.strength_t
    step = checker.forward.config.num_train_timesteps // len(checker.forward.timesteps)  # 20, as DragLoRA's
    abar_t, abar_lower = checker.forward.alphas_cumprod[t], checker.forward.alphas_cumprod[t - step]
    gen = torch.Generator().manual_seed(3)
    z = inverted
    everywhere = torch.ones_like(z[:, :1])
    for _ in range(cycles):
        z = adapt_latent(z, checker._eps(z, t), inverted, abar_t, abar_lower, everywhere,
                         torch.randn(z.shape, generator=gen))
    return _to_pixels(checker.decode(checker.denoise(z)))


def _match_errors(maps: torch.Tensor, points) -> list[float]:
    """Per point: search the input's value at the handle (maps[0], on the half-size grid) in the ground
    truth's (maps[1]) by L1; the image-pixel distance from the best match to the target."""
    errors = []
    for (hx, hy), (tx, ty) in points:
        distance = (maps[1] - maps[0, :, int(hy / 2), int(hx / 2)][:, None, None]).abs().mean(0)
        y, x = np.unravel_index(int(distance.argmin()), distance.shape)
        errors.append(float(np.hypot(2 * x + 1 - tx, 2 * y + 1 - ty)))
    return errors


def _input_and_truth(case: DragCase) -> torch.Tensor:
    return _to_tensor(np.stack([case.image(), case.expected_image()]))


@torch.no_grad()
def tracking_errors(checker: Checker) -> list[float]:
    """Per case and point: image-pixel distance from the best feature match to the target."""
    errors = []
    for case in all_cases():
        features = checker.features(checker.invert(checker.encode(_input_and_truth(case))), checker.strength_t)
        errors += _match_errors(features, case.points)
    return errors


def first_step_alignment(checker: Checker, cases: list[DragCase] | None = None) -> tuple[list[float], list[float]]:
    """Per case that moves whole objects (all, or ``cases``): the cosine of the motion supervision's
    first Adam step on the inverted latent, -sign(grad) of DragDiffusion's loss (patch radius 1), with
    a move of the objects' content by one feature pixel (2 image px) along their drags; and the best a
    sign step can reach (the sign of that move itself). Near 0: the drag's steps walk past the content."""
    steps, best = [], []
    for case in [case for case in all_cases() if case.kind == "move"] if cases is None else cases:
        z0 = checker.encode(_to_tensor(case.image()[None]))
        inverted = checker.invert(z0).requires_grad_(True)
        points = torch.tensor(np.round(np.array(case.points, dtype=np.float64) / 2.0), dtype=torch.float32)
        loss = motion_loss(checker.features(inverted, checker.strength_t), points[:, 0], points[:, 1], radius=1)
        (grad,) = torch.autograd.grad(loss, inverted)
        move = content_change(z0, case, step_px=2.0).flatten()
        steps.append(float(F.cosine_similarity(-grad.sign().flatten(), move, dim=0)))
        best.append(float(F.cosine_similarity(move.sign(), move, dim=0)))
    return steps, best


def colour_matching_errors() -> list[float]:
    """The same search as tracking_errors with the images' colours (averaged to the feature grid) in
    place of the features: the baseline that features must beat to describe more than colour."""
    errors = []
    for case in all_cases():
        errors += _match_errors(F.avg_pool2d(_input_and_truth(case), 2), case.points)
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dragedit.toy.diagnose", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the diffusers model folder")
    parser.add_argument("--out", type=Path, default=Path("toy-check"))
    parser.add_argument("--no-tracking", action="store_true",
                        help="skip the (slower) feature checks: tracking and the first step's direction")
    parser.add_argument("--vae-scenes", type=int, default=32,
                        help="held-out scenes for the VAE round trip (32: the number docs/quality.md reports)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(0)
    checker = Checker(args.folder)
    images = random_images(6, seed=987654)
    x = _to_tensor(images)
    z = checker.encode(x)
    recon = _to_pixels(checker.decode(z))
    inverted = checker.invert(z)
    round_trip = _to_pixels(checker.decode(checker.denoise(inverted)))
    samples = _to_pixels(checker.decode(checker.denoise(torch.randn_like(z), 50)))
    pooled, lowest, highest = vae_round_trip_db(checker, args.vae_scenes)
    print(f"VAE round trip on {args.vae_scenes} held-out scenes: {pooled:.2f} dB "
          f"(per scene {lowest:.1f}-{highest:.1f} dB)")
    t = checker.strength_t
    print(f"inversion to t={t} and back (no LoRA) PSNR: {_psnr(images, round_trip):.2f} dB")
    alpha = float(checker.forward.alphas_cumprod[t])
    expected = float(torch.sqrt(alpha * z.var() + 1 - alpha))
    print(f"inverted latent std {float(inverted.std()):.2f} (a latent noised to t={t} has {expected:.2f})")
    spread = " / ".join(f"{v:.2f}" for v in latent_channel_spread(checker))
    print(f"latent channels' variance along their principal directions: {spread} (whitened: all 1)")
    for level, (mse, std) in noise_prediction_errors(checker, z, (101, 381, t)).items():
        print(f"noise prediction at t={level}: MSE {mse:.3f}, std {std:.2f} (ideal 0, 1)")
    perturbed, fresh = perturbed_round_trips(checker, z, inverted)
    print(f"inverted latent + N(0, {PERTURBATION}^2) and back: {_psnr(images, perturbed):.2f} dB; "
          f"noised afresh to t={t} and denoised: {_psnr(images, fresh):.2f} dB")
    chained = ilfa_chain(checker, inverted)
    print(f"after {ILFA_CYCLES} ILFA cycles (DragLoRA's re-noising, no drag) and back: {_psnr(images, chained):.2f} dB")
    if not args.no_tracking:
        for name, errors in (("feature", tracking_errors(checker)), ("colour (baseline)", colour_matching_errors())):
            print(f"{name} tracking error over {len(errors)} points: median {np.median(errors):.1f} px, "
                  f"{np.mean(np.asarray(errors) <= 4):.0%} within 4 px")
        steps, best = first_step_alignment(checker)
        print(f"motion supervision's first step against a one-pixel move of the content, over {len(steps)} "
              f"moves: cosine {np.mean(steps):.3f} (the best sign step: {np.mean(best):.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [np.concatenate(list(r), axis=1) for r in (images, recon, round_trip, perturbed, fresh, chained, samples)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out / "check.png")
    print(f"pictures: {(args.out / 'check.png').resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
