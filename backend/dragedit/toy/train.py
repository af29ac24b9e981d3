"""Train the toy model shipped with DragEdit: a small SD-1.5-layout latent diffusion model of toy scenes.

Reproducible (seeded, fixed step counts, fixed thread count). The shipped weights were made with:

    nice -n 10 .venv/bin/python -m dragedit.toy.train --out backend/dragedit/toy/model --log /tmp/toy-train.log

Stage 1 trains the VAE (MSE + a tiny KL term) on random crops of rendered scenes; stage 2 encodes the
scenes and trains the UNet (epsilon prediction, DDPM noise on the scheduler's betas, EMA weights) with
the text encoder frozen and fed the empty prompt, which is what the engine sends by default.
Stage 3 refines the decoder alone (the latent space stays, so the UNet stays valid). Checkpoints of the
whole pipeline are written to --out while stage 2 runs, so samples can be checked early
(`python -m dragedit.toy.diagnose FOLDER`).

Resumable: `--minutes M` stops after M minutes and writes the run's whole state to
OUT/train-state.safetensors (also every --checkpoint-every steps); the same command with `--resume`
continues it, and the weights come out the same as from a run that never stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .scenes import random_images
from .train_state import STATE_FILE, TrainingState, save_state

log = logging.getLogger("dragedit.toy.train")

IMAGE_SIZE = 128
PROMPT = ""  # the fixed prompt the model is trained with (the engine's default prompt)
STAGES = ("vae", "unet", "decoder")
LOG_EVERY = 25  # steps between progress lines in --log

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

# The options that decide the weights: a run continues only with the same ones.
RECIPE = ("seed", "images", "vae_steps", "unet_steps", "decoder_steps", "full_size_from", "low_noise_share",
          "vae_channels", "unet_channels", "vae_batch", "vae_crop", "unet_batch", "latent_std", "vae_from",
          "whiten_latent")

StepFn = Callable[[int], str]  # runs one training step, returns a short progress text


def _cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _psnr_db(mse: float) -> float:
    return 10 * math.log10(4.0 / max(mse, 1e-12))  # images in [-1, 1]


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


def _randn(shape: torch.Size, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Normal noise drawn on the CPU generator (the same numbers on every device)."""
    return torch.randn(shape, generator=gen).to(device)


def vae_config(channels: tuple[int, ...]) -> dict[str, Any]:
    """The toy VAE's config with the given block widths (the first is the shipped 32, 64, 64)."""
    return VAE_CONFIG | {"block_out_channels": channels, "down_block_types": ("DownEncoderBlock2D",) * len(channels),
                         "up_block_types": ("UpDecoderBlock2D",) * len(channels)}


def unet_config(channels: tuple[int, ...]) -> dict[str, Any]:
    """The toy UNet's config with the given widths of its 4 blocks (up_blocks[2] has channels[1])."""
    if len(channels) != 4:
        raise ValueError("the UNet keeps SD-1.5's 4 blocks: give 4 widths, e.g. 32,32,64,64")
    return UNET_CONFIG | {"block_out_channels": channels}


def vae_step(vae, opt, images: torch.Tensor, steps: int, batch: int, crop: int, lr: float, gen: torch.Generator,
             device: torch.device) -> StepFn:
    """Stage 1: an AutoencoderKL trained for reconstruction (MSE) with a 1e-6 KL term."""
    def step_fn(step: int) -> str:
        _set_lr(opt, _cosine_lr(step, steps, 50, lr))
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        late = step >= steps * 0.85  # finish on larger crops
        x = _random_crops(images[idx[:batch // 2] if late else idx], crop * 2 if late else crop, gen)
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        x = x.to(device)
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * _randn(posterior.mean.shape, gen, device)
        mse = F.mse_loss(vae.decode(z).sample, x)
        loss = mse + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return f"psnr {_psnr_db(mse.item()):.2f} dB"
    return step_fn


def decoder_step(vae, opt, images: torch.Tensor, steps: int, batch: int, crop: int, lr: float, gen: torch.Generator,
                 device: torch.device) -> StepFn:
    """Stage 3: the decoder alone (MSE) on larger crops; the encoder, so the latent space the UNet
    learned, stays as it is."""
    def step_fn(step: int) -> str:
        _set_lr(opt, _cosine_lr(step, steps, 20, lr))
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        x = _random_crops(images[idx], crop, gen).to(device)
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * _randn(posterior.mean.shape, gen, device)
        mse = F.mse_loss(vae.decode(z).sample, x)
        opt.zero_grad(set_to_none=True)
        mse.backward()
        opt.step()
        return f"psnr {_psnr_db(mse.item()):.2f} dB"
    return step_fn


def decoder_optimizer(vae, lr: float) -> torch.optim.Optimizer:
    """Freeze everything but the decoder (and its post-quant conv); AdamW over those."""
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    vae.post_quant_conv.requires_grad_(True)
    return torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, chunk: int = 32, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image."""
    means, stds = [], []
    for start in range(0, images.shape[0], chunk):
        posterior = vae.encode(images[start:start + chunk].to(device)).latent_dist
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


@torch.no_grad()
def whiten_latent_channels(vae, images: torch.Tensor) -> None:
    """Give the VAE's latent channels zero mean, unit variance and no correlation over ``images``,
    folded into its 1x1 quant_conv (the posterior mean's channels) and the inverse into post_quant_conv,
    so every image decodes exactly as before (ZCA whitening: the channels stay as close to the old ones
    as a whitening allows).

    The toy VAE's channels are far from isotropic (variance 0.05 to 2.4 along their principal
    directions); the methods' Adam steps move every latent element by about the same amount, so along
    the weak directions they leave the scenes' latents by many times their spread.
    """
    channels = vae.config.latent_channels
    mean, _ = encode_all(vae, images, device=vae.device)
    x = mean.transpose(0, 1).reshape(channels, -1).double()
    variances, directions = torch.linalg.eigh(torch.cov(x))
    whiten = directions @ torch.diag(variances.rsqrt()) @ directions.T
    shift = -whiten @ x.mean(1)
    unwhiten = torch.linalg.inv(whiten)
    into, out_of = vae.quant_conv, vae.post_quant_conv
    into.bias[:channels] = (whiten @ into.bias[:channels].double() + shift).to(into.bias)
    into.weight[:channels, :, 0, 0] = (whiten @ into.weight[:channels, :, 0, 0].double()).to(into.weight)
    out_of.bias[:] = (out_of.bias.double() - out_of.weight[:, :, 0, 0].double() @ unwhiten @ shift).to(out_of.bias)
    out_of.weight[:, :, 0, 0] = (out_of.weight[:, :, 0, 0].double() @ unwhiten).to(out_of.weight)


def narrow_posterior(vae) -> None:
    """Make the VAE encode to its posterior mean (log-variance -30, diffusers' floor: std ~3e-7).

    The toy VAE learns a wide posterior (std ~0.4 against a latent spread ~1.2) that its decoder
    tolerates but a real SD-1.5 VAE does not have; the methods' RecLoRA trains on posterior draws
    (as the authors' code does), so on the wide toy posterior it learned a blurred image and the
    drags barely moved. The mean, which the decoder and the UNet were trained on, is unchanged.
    """
    channels = vae.config.latent_channels
    with torch.no_grad():
        vae.quant_conv.weight[channels:] = 0.0
        vae.quant_conv.bias[channels:] = -30.0


def save_pipeline(folder: Path, unet, vae, text_encoder, tokenizer) -> None:
    """Write the standard diffusers StableDiffusionPipeline folder (safetensors only), the VAE's
    posterior narrowed to its mean (see narrow_posterior)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from ..engine.models import ddim_scheduler_config

    narrow_posterior(vae)

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
    not: docs/quality.md.)
    """
    low = int(round(count * low_noise_share))
    return torch.cat([torch.randint(0, int(total * 0.3), (low,), generator=gen),
                      torch.randint(0, total, (count - low,), generator=gen)])


def unet_step(unet, ema, opt, latent_mean: torch.Tensor, latent_std: torch.Tensor, context: torch.Tensor, steps: int,
              batch: int, crop: int, lr: float, gen: torch.Generator, full_size_from: float, low_noise_share: float
              ) -> StepFn:
    """Stage 2: epsilon-prediction training on scaled latents, EMA weights in `ema`."""
    from diffusers import DDPMScheduler

    from ..engine.models import ddim_scheduler_config

    noise_schedule = DDPMScheduler(**{k: v for k, v in ddim_scheduler_config().items()
                                      if k not in ("set_alpha_to_one", "steps_offset")})
    device = latent_mean.device

    def step_fn(step: int) -> str:
        _set_lr(opt, _cosine_lr(step, steps, 100, lr))
        full_size = step >= steps * full_size_from  # crops first (cheap), then whole latents (what drags see)
        size = latent_mean.shape[-1] if full_size else crop
        count = batch // 4 if full_size else batch
        idx = torch.randint(0, latent_mean.shape[0], (count,), generator=gen)
        latents = latent_mean[idx] + latent_std[idx] * _randn(latent_mean[idx].shape, gen, device)
        latents = _random_crops(latents, size, gen)
        noise = _randn(latents.shape, gen, device)
        t = _training_timesteps(count, noise_schedule.config.num_train_timesteps, low_noise_share, gen)
        noisy = noise_schedule.add_noise(latents, noise, t.to(device))
        loss = F.mse_loss(unet(noisy, t.to(device), context.expand(count, -1, -1)).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update_parameters(unet)
        return f"loss {loss.item():.4f}"
    return step_fn


class Sitting:
    """One sitting of a (possibly resumed) run: the progress bar with its ETA, the time budget, and
    the loop that runs a stage's steps, writing the state when the budget or a checkpoint is due."""

    def __init__(self, total_steps: int, done_steps: int, minutes: float | None, stop_after: int | None,
                 checkpoint_every: int, show_bar: bool = True):
        from tqdm import tqdm

        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes
        self.stop_after = stop_after  # steps in this sitting (tests stop at an exact step)
        self.checkpoint_every = checkpoint_every
        self.steps = 0
        self.bar = tqdm(total=total_steps, initial=done_steps, unit="step", dynamic_ncols=True, file=sys.stderr,
                        disable=not show_bar, bar_format="{l_bar}{bar}| {n}/{total} [{elapsed}<{remaining}, {rate_fmt}]")

    def out_of_budget(self) -> bool:
        return ((self.deadline is not None and time.monotonic() >= self.deadline)
                or (self.stop_after is not None and self.steps >= self.stop_after))

    def run(self, stage: str, steps: int, start: int, step_fn: StepFn, save: Callable[[str, int], None],
            on_checkpoint: Callable[[int], None] | None = None) -> bool:
        """Steps start..steps-1 of `stage`; False when the budget ran out (the state is then saved)."""
        self.bar.set_description(stage)
        for step in range(start, steps):
            if self.out_of_budget():
                save(stage, step)
                return False
            text = step_fn(step)
            self.steps += 1
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
            if step % LOG_EVERY == 0 or step == steps - 1:
                log.debug("%s step %d/%d %s", stage, step, steps, text)
            if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0 and step + 1 < steps:
                save(stage, step + 1)
                if on_checkpoint:
                    on_checkpoint(step + 1)
        return True

    def close(self) -> None:
        self.bar.close()


def _channels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths separated by commas, e.g. 32,64,64, got '{text}'")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dragedit.toy.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the diffusers pipeline to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy machine: no spinning threads)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (random numbers are drawn on the CPU)")
    parser.add_argument("--images", type=int, default=3000, help="number of rendered training scenes")
    parser.add_argument("--vae-steps", type=int, default=6000,
                        help="VAE steps (default 6000: 34.7 dB round trip on held-out scenes; 500 gave 27.4 dB)")
    parser.add_argument("--unet-steps", type=int, default=1000)
    parser.add_argument("--vae-channels", type=_channels, default=VAE_CONFIG["block_out_channels"],
                        help="VAE block widths (default 32,64,64; one factor-2 downsampling per block after the first)")
    parser.add_argument("--unet-channels", type=_channels, default=UNET_CONFIG["block_out_channels"],
                        help="the UNet's 4 block widths (default 32,32,64,64)")
    parser.add_argument("--vae-batch", type=int, default=16, help="VAE batch (crops; half as many larger ones at the end)")
    parser.add_argument("--vae-crop", type=int, default=32,
                        help="VAE crop size in pixels (the last 15%% of the steps use twice this, at most the scene)")
    parser.add_argument("--unet-batch", type=int, default=32,
                        help="UNet batch of latent crops (a quarter as many whole latents at the end)")
    parser.add_argument("--full-size-from", type=float, default=0.8,
                        help="share of the UNet steps after which it trains on whole latents instead of crops")
    parser.add_argument("--low-noise-share", type=float, default=0.0,
                        help="share of each UNet batch drawn from the lowest 30%% of the timesteps")
    parser.add_argument("--latent-std", type=float, default=1.0,
                        help="spread of the scaled latents the UNet learns (the VAE's scaling_factor is set to give "
                             "it); below 1, the same timestep hides more of a scene (default 1, as SD-1.5)")
    parser.add_argument("--vae-from", default=None, metavar="FOLDER",
                        help="skip stage 1: take the VAE of this model folder (e.g. backend/dragedit/toy/model) and "
                             "train a new UNet on its latents (its saved encoder gives the posterior mean, so the "
                             "UNet learns clean latents); use --decoder-steps 0 to keep its decoder as it is")
    parser.add_argument("--whiten-latent", action="store_true",
                        help="before stage 2, whiten the VAE's latent channels (decorrelated, unit variance; the "
                             "reconstructions stay the same), so the UNet learns an isotropic latent")
    parser.add_argument("--decoder-steps", type=int, default=600, help="stage 3: decoder-only refinement steps")
    parser.add_argument("--only-decoder", action="store_true",
                        help="run stage 3 alone on the VAE already in --out (stages 1-2 done; on a finished model it "
                             "refines the decoder further) and save the VAE; training.json records the sitting")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this many minutes, writing the state to continue from with --resume")
    parser.add_argument("--resume", action="store_true", help=f"continue the run whose {STATE_FILE} is in --out")
    parser.add_argument("--checkpoint-every", type=int, default=200,
                        help="steps between state files (and, in stage 2, pipeline checkpoints)")
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: stop exactly
    parser.add_argument("--no-bar", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--log", type=Path, default=None, help="also log progress to this file")
    return parser.parse_args(argv)


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    return {name: list(v) if isinstance(v := getattr(args, name), tuple) else v for name in RECIPE}


def _command(argv: list[str]) -> str:
    """The command line of this run, as training.json records it."""
    return "python -m dragedit.toy.train " + " ".join(argv)


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"


def _setup_logging(path: Path | None) -> None:
    console = logging.StreamHandler()
    console.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [console]
    if path:
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s", handlers=handlers, force=True)
    for noisy in ("diffusers", "transformers", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def only_decoder(args: argparse.Namespace, images: torch.Tensor, device: torch.device, argv: list[str]) -> int:
    """Stage 3 alone on the VAE in --out, saved back there (the same weights as in a full run when the
    VAE is a finished stage 2's; run on a finished model, a further refinement). The sitting is added
    to the folder's training.json, so the folder keeps saying how it was made."""
    from diffusers import AutoencoderKL

    started = time.time()
    vae = AutoencoderKL.from_pretrained(args.out, subfolder="vae").to(device)
    gen = torch.Generator().manual_seed(args.seed + 3)
    opt = decoder_optimizer(vae, 5e-4)
    sitting = Sitting(args.decoder_steps, 0, None, None, 0, not args.no_bar)
    sitting.run("decoder", args.decoder_steps, 0,
                decoder_step(vae, opt, images, args.decoder_steps, 8, 64, 5e-4, gen, device), lambda *_: None)
    sitting.close()
    narrow_posterior(vae)
    vae.save_pretrained(args.out / "vae", safe_serialization=True)
    record = args.out / "training.json"
    made = json.loads(record.read_text()) if record.is_file() else {}
    made.setdefault("decoder_refinements", []).append({
        "command": _command(argv), "decoder_steps": args.decoder_steps,
        "seed": args.seed, "seconds": round(time.time() - started), "machine": _machine(device),
        "date": time.strftime("%Y-%m-%d")})
    record.write_text(json.dumps(made, indent=1))
    log.info("decoder refined and saved to %s", args.out / "vae")
    return 0


def main(argv: list[str] | None = None) -> int:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _setup_logging(args.log)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / STATE_FILE
    state = None
    if args.resume:
        if not state_path.is_file():
            print(f"error: no {STATE_FILE} in {args.out} to resume from; start the run without --resume",
                  file=sys.stderr)
            return 2
        state = TrainingState(state_path)
        if state.meta["recipe"] != _recipe(args):
            print(f"error: {state_path} was made with {state.meta['recipe']}; resume it with those options "
                  f"(got {_recipe(args)})", file=sys.stderr)
            return 2
    elif state_path.is_file() and not args.only_decoder:
        print(f"error: {state_path} holds an unfinished run: continue it with --resume, or delete the file "
              "to start over", file=sys.stderr)
        return 2

    started = time.time()
    torch.manual_seed(args.seed)
    gens = {"main": torch.Generator().manual_seed(args.seed),
            # stage 3 has its own generator, so running it separately (--only-decoder) gives the same weights
            "decoder": torch.Generator().manual_seed(args.seed + 3)}
    images = _to_tensor(random_images(args.images, seed=args.seed, size=IMAGE_SIZE))
    log.info("rendered %d scenes in %.0f s", images.shape[0], time.time() - started)
    if args.only_decoder:
        return only_decoder(args, images, device, argv)

    stage_at = STAGES.index(state.stage) if state else (1 if args.vae_from else 0)
    step_at = state.step if state else 0
    if state:
        for name, generator in gens.items():
            state.restore_generator(name, generator)
    totals = {"vae": 0 if args.vae_from else args.vae_steps, "unet": args.unet_steps, "decoder": args.decoder_steps}
    done = sum(totals[s] for s in STAGES[:stage_at]) + step_at
    sitting = Sitting(sum(totals.values()), done, args.minutes, args.stop_after_steps, args.checkpoint_every,
                      not args.no_bar)
    earlier_seconds = state.meta["seconds"] if state else 0.0
    meta = {"recipe": _recipe(args)}

    def saver(modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer) -> Callable[[str, int], None]:
        def save(stage: str, step: int) -> None:
            save_state(state_path, meta | {"stage": stage, "step": step,
                                          "seconds": earlier_seconds + time.time() - started},
                       modules, opt, gens)
        return save

    def stopped() -> int:
        sitting.close()
        log.info("stopped after %.1f min: state in %s; continue with the same command and --resume",
                 (time.time() - started) / 60, state_path)
        return 0

    # stage 1: the VAE (or the one of --vae-from)
    if args.vae_from:
        vae = AutoencoderKL.from_pretrained(args.vae_from, subfolder="vae").to(device)
    else:
        vae = AutoencoderKL(**vae_config(args.vae_channels)).to(device)
    vae_opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    if stage_at == 0:
        if state:
            state.restore_module("vae", vae)
            state.restore_optimizer(vae_opt)
        if not sitting.run("vae", args.vae_steps, step_at,
                           vae_step(vae, vae_opt, images, args.vae_steps, args.vae_batch, args.vae_crop, 1e-3,
                                    gens["main"], device),
                           saver({"vae": vae}, vae_opt)):
            return stopped()
    elif state:
        state.restore_module("vae", vae)
    vae.eval().requires_grad_(False)
    if args.whiten_latent and (not state or state.stage == "vae"):  # a resumed later stage has it whitened
        whiten_latent_channels(vae, images)  # then encoded again below, as a resumed run encodes it
    if stage_at < 2:
        mean, std = encode_all(vae, images, device=device)
        meta["scaling_factor"] = float(args.latent_std / mean.std())
        log.info("latent std %.4f -> scaling_factor %.5f", mean.std().item(), meta["scaling_factor"])
    else:
        meta["scaling_factor"] = state.meta["scaling_factor"]
    scaling = meta["scaling_factor"]
    vae.register_to_config(scaling_factor=scaling)

    # stage 2: the UNet
    tokenizer, text_encoder = build_text_encoder(args.out, args.seed)
    context = embed_prompt(tokenizer, text_encoder, PROMPT).to(device)
    unet = UNet2DConditionModel(**unet_config(args.unet_channels)).to(device)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(0.995))
    unet_opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    models = {"vae": vae, "unet": unet, "ema": ema}
    if stage_at == 1 and state:
        for name, module in models.items():
            state.restore_module(name, module)
        state.restore_optimizer(unet_opt)
    if stage_at <= 1:
        def pipeline_checkpoint(step: int) -> None:
            save_pipeline(args.out, ema.module, vae, text_encoder, tokenizer)
            log.debug("checkpoint written to %s", args.out)

        if not sitting.run("unet", args.unet_steps, step_at if stage_at == 1 else 0,
                           unet_step(unet, ema, unet_opt, mean * scaling, std * scaling, context, args.unet_steps,
                                     args.unet_batch, 16, 1e-3, gens["main"], args.full_size_from,
                                     args.low_noise_share),
                           saver(models, unet_opt), pipeline_checkpoint):
            return stopped()
    else:
        for name, module in models.items():
            state.restore_module(name, module)
    ema.module.eval().requires_grad_(False)

    # stage 3: the decoder alone
    decoder_opt = decoder_optimizer(vae, 5e-4)
    if stage_at == 2:
        state.restore_optimizer(decoder_opt)
    if not sitting.run("decoder", args.decoder_steps, step_at if stage_at == 2 else 0,
                       decoder_step(vae, decoder_opt, images, args.decoder_steps, 8, 64, 5e-4, gens["decoder"], device),
                       saver(models, decoder_opt)):
        return stopped()
    vae.eval().requires_grad_(False)
    sitting.close()
    save_pipeline(args.out, ema.module, vae, text_encoder, tokenizer)
    seconds = earlier_seconds + time.time() - started
    made = {"command": _command(argv), **_recipe(args), "image_size": IMAGE_SIZE, "prompt": PROMPT,
            "seconds": round(seconds), "machine": _machine(device), "resumed": bool(state)}
    if args.vae_from and (vae_record := Path(args.vae_from) / "training.json").is_file():
        made["vae_made_by"] = json.loads(vae_record.read_text())  # the model keeps saying how its VAE was made
    (args.out / "training.json").write_text(json.dumps(made, indent=1))
    state_path.unlink(missing_ok=True)
    log.info("done in %.0f s (all sittings); pipeline in %s", seconds, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
