"""Train the toy model shipped with DragEdit: a small SD-1.5-layout latent diffusion model of toy scenes.

Reproducible (seeded, fixed step counts, fixed thread count). The shipped weights were made with:

    nice -n 10 .venv/bin/python -m dragedit.toy.train --out backend/dragedit/toy/model --log /tmp/toy-train.log

Stage 1 trains the VAE (MSE + a tiny KL term) on random crops of rendered scenes; stage 2 encodes the
scenes and trains the UNet (epsilon prediction, DDPM noise on the scheduler's betas, EMA weights) with
the text encoder frozen and fed the empty prompt, which is what the engine sends by default.
Stage 3 refines the decoder alone (the latent space stays, so the UNet stays valid). Checkpoints of the
whole pipeline are written to --out while stage 2 runs, so samples can be checked early
(`python -m dragedit.toy.diagnose FOLDER`).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .scenes import random_images

log = logging.getLogger("dragedit.toy.train")

IMAGE_SIZE = 128
PROMPT = ""  # the fixed prompt the model is trained with (the engine's default prompt)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE, layers_per_block=1,
    block_out_channels=(32, 64, 64), down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=16, mid_block_add_attention=False,
)
# Same block structure as SD-1.5 (4 down/up blocks, 2 layers each, 16 transformer blocks, so
# up_blocks[2] and up_blocks[3] hold the 10th..16th self-attention layers), only narrower.
UNET_CONFIG = dict(
    sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(32, 32, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8,
)
TEXT_CONFIG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                   max_position_embeddings=77, projection_dim=32)


def _cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _random_crops(batch: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    if size >= batch.shape[-1]:
        return batch
    limit = batch.shape[-1] - size + 1
    ys = torch.randint(0, limit, (batch.shape[0],), generator=gen)
    xs = torch.randint(0, limit, (batch.shape[0],), generator=gen)
    return torch.stack([b[:, y:y + size, x:x + size] for b, y, x in zip(batch, ys.tolist(), xs.tolist())])


def train_vae(images: torch.Tensor, steps: int, batch: int, crop: int, lr: float, gen: torch.Generator):
    """Stage 1: an AutoencoderKL trained for reconstruction (MSE) with a 1e-6 KL term."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    started = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, 50, lr)
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        late = step >= steps * 0.85  # finish on larger crops
        x = _random_crops(images[idx[:batch // 2] if late else idx], crop * 2 if late else crop, gen)
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        mse = F.mse_loss(recon, x)
        loss = mse + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))
            log.info("vae step %d/%d mse %.5f psnr %.2f dB (%.0f s)", step, steps, mse.item(), psnr, time.time() - started)
    vae.eval().requires_grad_(False)
    return vae


def refine_decoder(vae, images: torch.Tensor, steps: int, batch: int, crop: int, lr: float, gen: torch.Generator):
    """Stage 3: train the decoder alone (MSE) on larger crops; the encoder, so the latent space the UNet
    learned, stays as it is."""
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    vae.post_quant_conv.requires_grad_(True)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    started = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, 20, lr)
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        x = _random_crops(images[idx], crop, gen)
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        mse = F.mse_loss(vae.decode(z).sample, x)
        opt.zero_grad(set_to_none=True)
        mse.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            log.info("decoder step %d/%d psnr %.2f dB (%.0f s)", step, steps, 10 * math.log10(4.0 / max(mse.item(), 1e-12)),
                     time.time() - started)
    vae.eval().requires_grad_(False)
    return vae


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image."""
    means, stds = [], []
    for start in range(0, images.shape[0], chunk):
        posterior = vae.encode(images[start:start + chunk]).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def build_text_encoder(folder: Path, seed: int):
    """The tokenizer (written offline) and a small frozen, randomly initialised CLIP text encoder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ..engine.models import write_tokenizer

    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TEXT_CONFIG)
    text_encoder = CLIPTextModel(config).eval().requires_grad_(False)
    return tokenizer, text_encoder


@torch.no_grad()
def embed_prompt(tokenizer, text_encoder, prompt: str) -> torch.Tensor:
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids)[0]


def save_pipeline(folder: Path, unet, vae, text_encoder, tokenizer) -> None:
    """Write the standard diffusers StableDiffusionPipeline folder (safetensors only)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from ..engine.models import ddim_scheduler_config

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DDIMScheduler(**ddim_scheduler_config()), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def _training_timesteps(count: int, total: int, low_noise_share: float, gen: torch.Generator) -> torch.Tensor:
    """Timesteps uniform over all of them, except `low_noise_share` of the batch over the lowest 30%.

    (An experiment: DDIM inversion starts at low noise, where the shipped model's noise prediction is
    weakest. With 0.5 and 3000 steps the prediction improved, the inverted latents and the drags did
    not: README "Drag quality".)
    """
    low = int(round(count * low_noise_share))
    return torch.cat([torch.randint(0, int(total * 0.3), (low,), generator=gen),
                      torch.randint(0, total, (count - low,), generator=gen)])


def train_unet(latent_mean: torch.Tensor, latent_std: torch.Tensor, context: torch.Tensor, steps: int, batch: int,
               crop: int, lr: float, gen: torch.Generator, on_checkpoint, checkpoint_every: int,
               full_size_from: float = 0.8, low_noise_share: float = 0.0):
    """Stage 2: epsilon-prediction training on scaled latents; returns the EMA UNet."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from ..engine.models import ddim_scheduler_config

    noise_schedule = DDPMScheduler(**{k: v for k, v in ddim_scheduler_config().items()
                                      if k not in ("set_alpha_to_one", "steps_offset")})
    unet = UNet2DConditionModel(**UNET_CONFIG)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(0.995))
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-4)
    started = time.time()
    running = 0.0
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, 100, lr)
        full_size = step >= steps * full_size_from  # crops first (cheap), then whole latents (what drags see)
        size = latent_mean.shape[-1] if full_size else crop
        count = batch // 4 if full_size else batch
        idx = torch.randint(0, latent_mean.shape[0], (count,), generator=gen)
        latents = latent_mean[idx] + latent_std[idx] * torch.randn(latent_mean[idx].shape, generator=gen)
        latents = _random_crops(latents, size, gen)
        noise = torch.randn(latents.shape, generator=gen)
        t = _training_timesteps(count, noise_schedule.config.num_train_timesteps, low_noise_share, gen)
        noisy = noise_schedule.add_noise(latents, noise, t)
        pred = unet(noisy, t, context.expand(count, -1, -1)).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update_parameters(unet)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 25 == 0 or step == steps - 1:
            log.info("unet step %d/%d loss %.4f (avg %.4f) lr %.2e (%.0f s)", step, steps, loss.item(), running,
                     opt.param_groups[0]["lr"], time.time() - started)
        if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            on_checkpoint(ema.module)
    return ema.module.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dragedit.toy.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the diffusers pipeline to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy machine: no spinning threads)")
    parser.add_argument("--images", type=int, default=3000, help="number of rendered training scenes")
    parser.add_argument("--vae-steps", type=int, default=500)
    parser.add_argument("--unet-steps", type=int, default=1000)
    parser.add_argument("--full-size-from", type=float, default=0.8,
                        help="share of the UNet steps after which it trains on whole latents instead of crops")
    parser.add_argument("--low-noise-share", type=float, default=0.0,
                        help="share of each UNet batch drawn from the lowest 30%% of the timesteps")
    parser.add_argument("--decoder-steps", type=int, default=600, help="stage 3: decoder-only refinement steps")
    parser.add_argument("--only-decoder", action="store_true",
                        help="run stage 3 alone on the VAE already in --out (stages 1-2 done) and save the VAE")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--log", type=Path, default=None, help="also log progress to this file")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log:
        handlers.append(logging.FileHandler(args.log))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.time()
    images = _to_tensor(random_images(args.images, seed=args.seed, size=IMAGE_SIZE))
    log.info("rendered %d scenes in %.0f s", images.shape[0], time.time() - started)
    # stage 3 has its own generator, so running it separately (--only-decoder) gives the same weights
    decoder_gen = torch.Generator().manual_seed(args.seed + 3)
    if args.only_decoder:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(args.out, subfolder="vae")
        refine_decoder(vae, images, args.decoder_steps, batch=8, crop=64, lr=5e-4, gen=decoder_gen)
        vae.save_pretrained(args.out / "vae", safe_serialization=True)
        log.info("decoder refined and saved to %s in %.0f s", args.out / "vae", time.time() - started)
        return 0
    vae = train_vae(images, args.vae_steps, batch=16, crop=32, lr=1e-3, gen=gen)
    mean, std = encode_all(vae, images)
    scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    log.info("latent std %.4f -> scaling_factor %.5f", mean.std().item(), scaling)

    tokenizer, text_encoder = build_text_encoder(args.out, args.seed)
    context = embed_prompt(tokenizer, text_encoder, PROMPT)

    def checkpoint(unet) -> None:
        save_pipeline(args.out, unet, vae, text_encoder, tokenizer)
        log.info("checkpoint written to %s", args.out)

    unet = train_unet(mean * scaling, std * scaling, context, args.unet_steps, batch=32, crop=16, lr=1e-3, gen=gen,
                      on_checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                      full_size_from=args.full_size_from, low_noise_share=args.low_noise_share)
    refine_decoder(vae, images, args.decoder_steps, batch=8, crop=64, lr=5e-4, gen=decoder_gen)
    checkpoint(unet)
    (args.out / "training.json").write_text(json.dumps({
        "command": "python -m dragedit.toy.train " + " ".join(argv), "seed": args.seed,
        "images": args.images, "vae_steps": args.vae_steps, "unet_steps": args.unet_steps,
        "decoder_steps": args.decoder_steps,
        "image_size": IMAGE_SIZE, "prompt": PROMPT, "seconds": round(time.time() - started),
    }, indent=1))
    log.info("done in %.0f s", time.time() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
