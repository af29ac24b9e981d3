"""Loading a Stable-Diffusion-1.5-layout model (hub id, diffusers folder, single file) onto a device.

Also builds randomly initialised models of the same layout ("tiny" for tests, "sd15" for timing on
a GPU without downloadable weights), saved as ordinary diffusers folders so they load back through
exactly the code path a user's model takes.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .api import EditError, describe_source
from .precision import Precision, resolve_precision

log = logging.getLogger(__name__)

TOY_MODEL_DIR = Path(__file__).resolve().parent.parent / "toy" / "model"


def ddim_scheduler_config(num_train_timesteps: int = 1000) -> dict:
    """The DDIM configuration every method uses (METHODS.md: shared ground)."""
    return {
        "num_train_timesteps": num_train_timesteps,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    }


@dataclass
class DiffusionModel:
    """The pieces of a loaded model and where they live."""

    source: str
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object  # diffusers DDIMScheduler
    device: torch.device
    precision: Precision
    vae_source: str | None = None  # a VAE loaded in place of the model's own (None: its own)
    _prompt_cache: dict = field(default_factory=dict, repr=False)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' type at rest."""
        return self.precision.weights

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The image side the UNet was trained at (512 for SD-1.5, 128 for the toy model)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this for the UNet's skip connections to line up."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """CLIP text embedding of a prompt (cached per prompt)."""
        if prompt not in self._prompt_cache:
            tokens = self.tokenizer(
                prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            ).input_ids.to(self.device)
            self._prompt_cache[prompt] = self.text_encoder(tokens)[0].to(self.dtype)
        return self._prompt_cache[prompt]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EditError("no_gpu", f"device '{device}' was asked for but no CUDA GPU is available",
                        "use --device cpu (slow) or check the GPU driver")
    return torch.device(device)


def load_model(source: str, device: str = "auto", dtype: str = "auto", config: str | None = None,
               vae: str | None = None) -> DiffusionModel:
    """Load a model from "toy", a diffusers folder, a single ``.safetensors`` file or a hub id.

    dtype: the precision mode (precision.py: auto, authors, bf16, fp16, fp32). config: for a single
    file, the diffusers SD-1.5 folder or hub id that gives its architecture and tokenizer (None:
    diffusers' default, SD-1.5's configs fetched from the hub once, then cached). vae: a VAE to use
    instead of the model's own (see load_vae). Raises EditError with what went wrong and what to try.
    """
    from diffusers import DDIMScheduler

    dev = resolve_device(device)
    precision = resolve_precision(dtype, dev)
    kind = describe_source(source)
    try:
        if kind == "toy":
            parts = _load_folder(TOY_MODEL_DIR)
        elif kind == "folder":
            parts = _load_folder(Path(source).expanduser())
        elif kind == "single_file":
            parts = _load_single_file(Path(source).expanduser(), config)
        else:
            parts = _load_hub(source)
    except EditError:
        raise
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # diffusers/transformers raise many types; the user needs the sentence
        log.exception("model %s failed to load", source)
        raise EditError("model_load", f"the model '{source}' could not be loaded: {type(exc).__name__}: {exc}",
                        _load_hint(kind)) from exc
    unet, own_vae, text_encoder, tokenizer, num_train = parts
    vae_module = own_vae if vae is None else load_vae(vae, own_vae)
    for module in (unet, vae_module, text_encoder):
        module.requires_grad_(False)
        module.eval()
        module.to(dev, precision.weights)
    scheduler = DDIMScheduler(**ddim_scheduler_config(num_train))
    return DiffusionModel(source, unet, vae_module, text_encoder, tokenizer, scheduler, dev, precision, vae)


def load_vae(source: str, model_vae):
    """An AutoencoderKL from a hub id, a diffusers folder (the VAE's own, or a model's with vae/) or a
    single ``.safetensors`` file (diffusers or original layout, with the architecture of ``model_vae``,
    the model's own VAE). Safetensors only, like the models. Raises EditError with what to try."""
    from diffusers import AutoencoderKL

    kind = describe_source(source)
    path = Path(source).expanduser()
    hint = "give --vae a diffusers VAE folder, a .safetensors VAE file, or a hub id downloaded before"
    if kind == "single_file" and path.suffix != ".safetensors":
        raise EditError("unsafe_model", f"'{path.name}' is not a .safetensors file; pickled VAEs are never loaded",
                        "convert the VAE to .safetensors, or use a diffusers folder")
    try:
        if kind == "single_file":
            if not path.is_file():
                raise EditError("model_load", f"the VAE file '{path}' does not exist", hint)
            with tempfile.TemporaryDirectory(prefix="dragedit-vae-config-") as folder:
                model_vae.save_config(folder)
                return AutoencoderKL.from_single_file(str(path), config=folder, local_files_only=True)
        if kind == "folder":
            subfolder = "vae" if (path / "vae").is_dir() else None
            return AutoencoderKL.from_pretrained(path, subfolder=subfolder, use_safetensors=True)
        return AutoencoderKL.from_pretrained(source, use_safetensors=True)
    except EditError:
        raise
    except Exception as exc:  # diffusers raises many types; the user needs the sentence
        log.exception("VAE %s failed to load", source)
        raise EditError("model_load", f"the VAE '{source}' could not be loaded: {type(exc).__name__}: {exc}",
                        hint) from exc


def _load_hint(kind: str) -> str:
    return {
        "toy": "the shipped toy model is missing: reinstall DragEdit (python3 install.py)",
        "folder": "the folder must be a diffusers Stable Diffusion 1.5 folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/)",
        "single_file": "use a Stable Diffusion 1.5 checkpoint in .safetensors format",
        "hub": "check the model id and that it was downloaded before (no network here?), or give a local folder or .safetensors file with --model",
    }[kind]


def _load_folder(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if not (folder / "unet").is_dir():
        raise EditError("model_load", f"'{folder}' is not a diffusers model folder (no unet/ inside)", _load_hint("folder"))
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", use_safetensors=True)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    num_train = _num_train_timesteps(folder / "scheduler" / "scheduler_config.json")
    return unet, vae, text_encoder, tokenizer, num_train


def _num_train_timesteps(config_path: Path) -> int:
    try:
        return int(json.loads(config_path.read_text()).get("num_train_timesteps", 1000))
    except (OSError, ValueError):
        return 1000


NO_CONFIG_HINT = ("pass --model-config with a diffusers SD-1.5 folder (model_index.json and the configs of unet/, "
                  "vae/, text_encoder/, tokenizer/, scheduler/; the weights are not needed)")


def _load_single_file(path: Path, config: str | None):
    from diffusers import StableDiffusionPipeline
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not path.is_file():
        raise EditError("model_load", f"the checkpoint '{path}' does not exist", _load_hint("single_file"))
    if path.suffix != ".safetensors":
        raise EditError("unsafe_model", f"'{path.name}' is not a .safetensors file; pickled checkpoints are never loaded",
                        "convert the checkpoint to .safetensors, or use a diffusers folder")
    config_source = _single_file_config(config)
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=config_source, safety_checker=None, requires_safety_checker=False,
            local_files_only=config_source is not None and Path(config_source).is_dir(),
        )
    except LocalEntryNotFoundError as exc:
        wanted = f"the configs of '{config}'" if config else "SD-1.5's configs (diffusers' default for a single file)"
        raise EditError("model_config", f"the checkpoint '{path.name}' needs {wanted} to know its architecture, "
                        "and they are not on this machine and the model hub cannot be reached", NO_CONFIG_HINT) from exc
    return pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler.config.num_train_timesteps


def _single_file_config(config: str | None) -> str | None:
    """The folder or hub id to give diffusers as a single file's architecture; a named folder must exist."""
    if config is None:
        return None
    folder = Path(config).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise EditError("model_config", f"'{folder}' is not a diffusers model folder (no model_index.json inside)",
                            NO_CONFIG_HINT)
        return str(folder)
    if folder.is_absolute() or config.startswith((".", "~")) or config.count("/") != 1:
        raise EditError("model_config", f"the model config folder '{config}' does not exist", NO_CONFIG_HINT)
    return config  # a hub id


def _load_hub(repo_id: str):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        repo_id, safety_checker=None, requires_safety_checker=False, use_safetensors=True,
    )
    return pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler.config.num_train_timesteps


# --------------------------------------------------------------------------- random models

LAYOUTS = {
    # A few MB, milliseconds per pass on a CPU: a 64x64 image works at a 16x16 latent (VAE factor 4).
    "tiny": {
        "unet": dict(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 32, 64, 64),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8,
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1,
            block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8,
        ),
        "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=77, projection_dim=32),
    },
    # The real SD-1.5 architecture (860M UNet) with random weights: for speed and memory benchmarks.
    "sd15": {
        "unet": dict(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=768, attention_head_dim=8,
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
        ),
        "text": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                     max_position_embeddings=77, projection_dim=768),
    },
}


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE tokenizers use for raw bytes (GPT-2 convention)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = (b for b in range(256) if b not in printable)
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return [table[b] for b in range(256)]


def write_tokenizer(folder: Path) -> None:
    """Write a small byte-level CLIP tokenizer (vocab + merges) that needs no download."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
    }))


def build_random_model(folder: str | Path, layout: str = "tiny", seed: int = 0) -> Path:
    """Save a randomly initialised SD-1.5-layout model as a diffusers folder (safetensors) and return it."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = LAYOUTS[layout]
    folder = Path(folder)
    torch.manual_seed(seed)
    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    UNet2DConditionModel(**spec["unet"]).save_pretrained(folder / "unet", safe_serialization=True)
    AutoencoderKL(**spec["vae"]).save_pretrained(folder / "vae", safe_serialization=True)
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 **spec["text"])
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder", safe_serialization=True)
    DDIMScheduler(**ddim_scheduler_config()).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False,
    }, indent=1))
    return folder
