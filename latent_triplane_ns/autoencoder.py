"""Image autoencoder whose latent space the Tri-Planes live in: a diffusers AutoencoderKL or AutoencoderTiny, or the
identity for RGB."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from latent_triplane_ns.errors import InputError

LATENT_STATS_FILE = "ltn_latent_stats.json"
"""Per-channel latent statistics written beside an AutoencoderKL trained by this package (`ltn-train-ae`)."""

ATANH_EPS = 1e-4
"""Clip of the tanh normaliser's inverse: the largest recoverable latent is atanh(1 - eps) / scale."""


class AutoencoderError(InputError):
    """An autoencoder directory or setting that cannot be used."""


VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")
"""The diffusers autoencoders this package uses: AutoencoderKL (Stable Diffusion's VAE family) and AutoencoderTiny
(TAESD: plain convolutions, no attention or group norm, a deterministic latent)."""


class _DropTinyConfigNote(logging.Filter):
    """diffusers' AutoencoderTiny writes its decoder widths into its own config as `block_out_channels`, then warns
    when it reads that config back that the key is unexpected: harmless, and nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "were passed to AutoencoderTiny, but are not expected" not in record.getMessage()


logging.getLogger("diffusers.configuration_utils").addFilter(_DropTinyConfigNote())


def vae_class(name: str):
    """The diffusers class of one of VAE_CLASSES."""
    import diffusers

    if name not in VAE_CLASSES:
        raise AutoencoderError(f"{name!r} is not one of the autoencoders this package uses ({', '.join(VAE_CLASSES)})")
    return getattr(diffusers, name)


def vae_downsample_factor(vae) -> int:
    """Image side / latent side of a diffusers autoencoder (one level fewer downsamplings than levels)."""
    return _factor_of(dict(vae.config))


def _factor_of(config: Dict[str, Any]) -> int:
    levels = config.get("block_out_channels") or config["encoder_block_out_channels"]
    return 2 ** (len(levels) - 1)


def folder_latent_size(folder: Path) -> Tuple[int, int]:
    """(latent channels, downsampling factor) of the diffusers autoencoder in `folder`, from its config.json."""
    config_file = Path(folder) / "config.json"
    try:
        config = json.loads(config_file.read_text())
        return int(config["latent_channels"]), _factor_of(config)
    except FileNotFoundError as err:
        raise AutoencoderError(f"{config_file}: missing; {folder} is not a diffusers autoencoder directory") from err
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise AutoencoderError(
            f"{config_file}: not a diffusers autoencoder config ({type(err).__name__}: {err})"
        ) from err


def decoder_last_block_parameters(decoder: nn.Module) -> List[nn.Parameter]:
    """The parameters of a diffusers decoder's last up-block and output layers: AutoencoderKL's `up_blocks[-1]`,
    `conv_norm_out` and `conv_out`; AutoencoderTiny's layers after its last upsampling."""
    if hasattr(decoder, "up_blocks"):
        parts = [decoder.up_blocks[-1], decoder.conv_norm_out, decoder.conv_out]
        return [p for part in parts for p in part.parameters()]
    layers = list(decoder.layers)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Upsample))
    return [p for layer in layers[last + 1 :] for p in layer.parameters()]


def encode_latents(vae, x: Float[Tensor, "B 3 H W"], mode: str = "mean") -> Tuple[Tensor, Optional[Tensor]]:
    """Raw latents of images on the [-1, 1] scale, and the posterior's mean KL divergence (None for AutoencoderTiny,
    whose latent is deterministic). `mode` picks the posterior's mean or a draw from it. AutoencoderTiny is run
    through `encode`, since its `forward` quantises the latents."""
    encoded = vae.encode(x)
    posterior = getattr(encoded, "latent_dist", None)
    if posterior is None:
        return encoded.latents, None
    z = posterior.sample() if mode == "sample" else posterior.mean
    return z, posterior.kl().float().mean()


@dataclass
class CompactAEConfig:
    """Architecture of the compact autoencoder (Stable Diffusion's VAE family or TAESD's, fewer channels): what
    `ltn-train-ae` trains and what a 'compact' autoencoder starts from."""

    kind: Literal["kl", "tiny"] = "kl"
    """'kl': diffusers' AutoencoderKL (ResNet blocks, group norm, attention at the bottom, a Gaussian posterior);
    'tiny': diffusers' AutoencoderTiny (plain convolutions, no normalisation or attention, a deterministic latent)."""
    block_out_channels: Tuple[int, ...] = (32, 64, 64, 64)
    """Channels per resolution level; n levels downsample by 2^(n-1) (4 levels: 8x, as SD's VAE). An AutoencoderTiny
    has one width at every level."""
    latent_channels: int = 4
    """Latent channels."""
    layers_per_block: int = 1
    """ResNet layers per level."""

    @property
    def downsample_factor(self) -> int:
        """Image side / latent side."""
        return 2 ** (len(self.block_out_channels) - 1)

    def build(self):
        """A fresh autoencoder of this architecture."""
        if self.kind == "tiny":
            from diffusers import AutoencoderTiny

            if len(set(self.block_out_channels)) != 1:
                raise AutoencoderError(
                    f"block_out_channels={tuple(self.block_out_channels)}: an AutoencoderTiny keeps one width at every "
                    "level (e.g. 64 64 64 64)"
                )

            inner = (self.layers_per_block,) * (len(self.block_out_channels) - 1)
            return AutoencoderTiny(
                encoder_block_out_channels=tuple(self.block_out_channels),
                decoder_block_out_channels=tuple(reversed(self.block_out_channels)),
                latent_channels=self.latent_channels,
                num_encoder_blocks=(1, *inner),
                num_decoder_blocks=(*inner, 1),
            )
        return build_compact_vae(self.block_out_channels, self.latent_channels, self.layers_per_block)


@dataclass
class AutoencoderConfig(InstantiateConfig):
    """Which image autoencoder maps RGB images to the latent images that the Tri-Planes are fitted to."""

    _target: Type = field(default_factory=lambda: LatentAutoencoder)
    source: Literal["pretrained", "shipped", "compact", "identity"] = "shipped"
    """'pretrained': a local diffusers AutoencoderKL or AutoencoderTiny directory (a hub id only when named and
    online); 'shipped' (the default): the compact autoencoder inside the package (`latent_triplane_ns.shipped`, trained by
    `ltn-train-ae` on procedural cars); 'compact': the compact configuration below with fresh weights (the starting
    point of AE training, and tests); 'identity': no autoencoder, latents are the RGB image itself (the RGB
    Tri-Plane baseline)."""
    pretrained_path: Optional[Path] = None
    """Local AutoencoderKL or AutoencoderTiny directory (config.json and the weights), for source='pretrained'."""
    subfolder: Optional[str] = None
    """Subfolder of pretrained_path holding the autoencoder, e.g. 'vae' for a Stable Diffusion folder."""
    compact: CompactAEConfig = field(default_factory=CompactAEConfig)
    """Architecture of a 'compact' autoencoder."""
    encode_mode: Literal["mean", "sample"] = "mean"
    """Latent used as the target of an image: the posterior mean, or one random draw from it."""
    normalization: Literal["tanh", "none"] = "tanh"
    """Maps raw latents z to [0, 1]: 'tanh' is 0.5 * (tanh(scale * (z - shift)) + 1); 'none' keeps z."""
    tanh_scale: Optional[Tuple[float, ...]] = None
    """Per-channel (or one shared) tanh scale. None: the statistics stored beside the AE, else 0.02 (SD-VAE)."""
    tanh_shift: Optional[Tuple[float, ...]] = None
    """Per-channel (or one shared) shift. None: the statistics stored beside the AE, else 0."""

    def named_folder(self) -> Optional[Tuple[Path, Optional[str]]]:
        """(folder or hub id, subfolder) of the autoencoder this config loads: the shipped one, or the pretrained
        path; None for a compact or identity one, or a pretrained one without a path."""
        if self.source == "shipped":
            from latent_triplane_ns.shipped import shipped_autoencoder_dir

            return shipped_autoencoder_dir(), None
        if self.source == "pretrained" and self.pretrained_path is not None:
            return Path(self.pretrained_path), self.subfolder
        return None


def _per_channel(values: Optional[Tuple[float, ...]], channels: int, default: float, what: str) -> Tensor:
    if values is None:
        return torch.full((channels,), float(default))
    if len(values) == 1:
        return torch.full((channels,), float(values[0]))
    if len(values) != channels:
        raise AutoencoderError(f"{what} has {len(values)} values, the autoencoder has {channels} latent channels")
    return torch.tensor([float(v) for v in values])


def build_compact_vae(block_out_channels: Tuple[int, ...], latent_channels: int, layers_per_block: int):
    """Builds the compact AutoencoderKL (same family as Stable Diffusion's VAE, fewer channels)."""
    from diffusers import AutoencoderKL

    levels = len(block_out_channels)
    groups = min(32, *block_out_channels)
    return AutoencoderKL(
        block_out_channels=tuple(block_out_channels),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        latent_channels=latent_channels,
        layers_per_block=layers_per_block,
        norm_num_groups=groups,
    )


def read_latent_statistics(path: Path, channels: int) -> Dict[str, list]:
    """Reads a latent-statistics file (`{"shift": [...], "scale": [...]}`, one value per latent channel), with one
    clear error naming the file for anything wrong."""
    try:
        stats = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AutoencoderError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(stats, dict):
        raise AutoencoderError(f"{path}: expected an object with 'shift' and 'scale' lists")
    for key in ("shift", "scale"):
        values = stats.get(key)
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise AutoencoderError(f"{path}: '{key}' must be a list of numbers, one per latent channel")
        if len(values) != channels:
            raise AutoencoderError(
                f"{path}: '{key}' has {len(values)} values, the autoencoder beside it has {channels} latent channels"
            )
    return stats


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""What a Hugging Face hub id looks like (`owner/name`), as opposed to a relative folder that does not exist."""


def hub_is_offline() -> bool:
    """Whether the user has switched the hub off (`HF_HUB_OFFLINE=1`, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_pretrained_vae(path: Path, subfolder: Optional[str] = None):
    """Loads an AutoencoderKL or AutoencoderTiny from a local directory; a hub id (`owner/name`, e.g. `stabilityai/sd-vae-ft-mse`)
    that is not a local folder is downloaded through diffusers' own loading, only when the user is online."""
    root = Path(path) / subfolder if subfolder else Path(path)
    config_file = root / "config.json"
    if not root.exists() and HUB_ID.match(str(path)):
        return _load_from_hub(str(path), subfolder)
    if not root.is_dir():
        raise AutoencoderError(f"{root}: autoencoder directory does not exist")
    if not config_file.is_file():
        raise AutoencoderError(f"{config_file}: missing; {root} is not a diffusers autoencoder directory")
    try:
        class_name = json.loads(config_file.read_text()).get("_class_name")
    except json.JSONDecodeError as err:
        raise AutoencoderError(f"{config_file}: not valid JSON ({err})") from err
    if class_name not in VAE_CLASSES:
        raise AutoencoderError(f"{config_file}: describes a {class_name!r}, not an {' or '.join(VAE_CLASSES)}")
    try:
        # low_cpu_mem_usage=False: the default asks for `accelerate`, and warns when it is not installed
        return vae_class(class_name).from_pretrained(str(root), local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise AutoencoderError(f"{root}: could not load the {class_name} weights ({err})") from err


def _load_from_hub(hub_id: str, subfolder: Optional[str]):
    where = f"{hub_id}{f' (subfolder {subfolder})' if subfolder else ''}"
    if hub_is_offline():
        raise AutoencoderError(
            f"{where}: not a local folder, and as a hub id it needs the network, which HF_HUB_OFFLINE=1 switches "
            "off; give the path of a local AutoencoderKL folder, or unset HF_HUB_OFFLINE"
        )
    from diffusers import AutoencoderKL

    try:
        return AutoencoderKL.from_pretrained(hub_id, subfolder=subfolder, low_cpu_mem_usage=False)
    except (OSError, ValueError) as err:
        raise AutoencoderError(
            f"{where}: not a local folder, and it could not be loaded from the hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no message'}); check the id and the network, or give a local "
            "AutoencoderKL folder"
        ) from err


def autoencoder_record(autoencoder: LatentAutoencoder) -> Dict[str, Any]:
    """What rebuilds `autoencoder` without its folder: its settings and the AutoencoderKL's architecture (diffusers'
    config.json contents), in plain YAML/JSON types. Weights and normalisation constants are not in it: they are
    parameters and buffers, saved in every nerfstudio checkpoint."""
    vae = autoencoder.vae
    return {
        "encode_mode": autoencoder.config.encode_mode,
        "normalization": autoencoder.config.normalization,
        "architecture": None if vae is None else json.loads(vae.to_json_string()),
    }


def autoencoder_from_record(record: Dict[str, Any]) -> LatentAutoencoder:
    """An autoencoder of a recorded architecture with fresh weights, to be overwritten by a checkpoint's."""
    architecture = record.get("architecture")
    if architecture is None:
        return LatentAutoencoder(AutoencoderConfig(source="identity"))
    config = AutoencoderConfig(
        source="pretrained",
        encode_mode=record["encode_mode"],
        normalization=record["normalization"],
        # placeholders: the checkpoint overwrites the normalisation buffers
        tanh_scale=(1.0,),
        tanh_shift=(0.0,),
    )
    vae = vae_class(architecture.get("_class_name", "AutoencoderKL")).from_config(architecture)
    return LatentAutoencoder(config, vae=vae)


class LatentAutoencoder(nn.Module):
    """Encodes RGB images to normalised latent images in [0, 1] and decodes them back.

    Args:
        config: the autoencoder settings.
        vae: an already built AutoencoderKL to use instead of the one the config describes.
        latent_stats: per-channel ``{"shift": [...], "scale": [...]}`` to use when the config gives none.
    """

    def __init__(self, config: AutoencoderConfig, vae: Optional[nn.Module] = None, latent_stats: Optional[dict] = None):
        super().__init__()
        self.config = config
        stats = latent_stats or {}
        if vae is None and config.source in ("pretrained", "shipped"):
            named = config.named_folder()
            if named is None:
                raise AutoencoderError(
                    "autoencoder.source is 'pretrained' but no autoencoder.pretrained-path was given "
                    "(train one with `ltn-train-ae`, point to a local AutoencoderKL directory, or use the shipped "
                    "one with --pipeline.model.autoencoder.source shipped)"
                )
            folder, subfolder = named
            vae = load_pretrained_vae(folder, subfolder)
            stats_file = Path(folder) / (subfolder or "") / LATENT_STATS_FILE
            if not stats and stats_file.is_file():
                stats = read_latent_statistics(stats_file, int(vae.config.latent_channels))
        elif vae is None and config.source == "compact":
            vae = config.compact.build()
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            channels = int(vae.config.latent_channels)
            self.downsample_factor = vae_downsample_factor(vae)
        else:
            channels, self.downsample_factor = 3, 1
        self.latent_channels = channels
        self.normalization = config.normalization if vae is not None else "none"
        scale = config.tanh_scale if config.tanh_scale is not None else stats.get("scale")
        shift = config.tanh_shift if config.tanh_shift is not None else stats.get("shift")
        self.register_buffer("norm_scale", _per_channel(scale, channels, 0.02, "tanh_scale"))
        self.register_buffer("norm_shift", _per_channel(shift, channels, 0.0, "tanh_shift"))

    @torch.no_grad()
    def color_latents(self, colors: Float[Tensor, "S 3"]) -> Float[Tensor, "S C"]:
        """Normalised latents (S, C) of uniform images of each colour (the mean over the image of its encoder mean)."""
        side = 4 * self.downsample_factor
        images = colors.view(-1, 3, 1, 1).expand(-1, 3, side, side).to(self.norm_scale.device)
        return torch.cat([self.encode(chunk, mode="mean") for chunk in images.split(64)]).mean(dim=(2, 3))

    def normalize(self, z: Float[Tensor, "B C h w"]) -> Float[Tensor, "B C h w"]:
        """Raw latents -> normalised latents in [0, 1]."""
        if self.normalization == "none":
            return z
        scale, shift = self.norm_scale.view(1, -1, 1, 1), self.norm_shift.view(1, -1, 1, 1)
        return 0.5 * (torch.tanh(scale * (z - shift)) + 1.0)

    def denormalize(self, y: Float[Tensor, "B C h w"]) -> Float[Tensor, "B C h w"]:
        """Normalised latents -> raw latents; the inverse of `normalize` within the clip."""
        if self.normalization == "none":
            return y
        scale, shift = self.norm_scale.view(1, -1, 1, 1), self.norm_shift.view(1, -1, 1, 1)
        return torch.atanh((2.0 * y - 1.0).clamp(-1.0 + ATANH_EPS, 1.0 - ATANH_EPS)) / scale + shift

    def encode_raw(self, images: Float[Tensor, "B 3 H W"], mode: Optional[str] = None) -> Float[Tensor, "B C h w"]:
        """RGB images in [0, 1], H and W multiples of the downsampling f -> raw latents, h = H/f and w = W/f."""
        self.check_size(images.shape[-2], images.shape[-1])
        if self.vae is None:
            return images
        with torch.autocast(images.device.type, enabled=False):
            z, _ = encode_latents(self.vae, images.float() * 2.0 - 1.0, mode or self.config.encode_mode)
        return z

    def encode(self, images: Float[Tensor, "B 3 H W"], mode: Optional[str] = None) -> Float[Tensor, "B C h w"]:
        """RGB images in [0, 1] -> normalised latents in [0, 1], h = H/f and w = W/f."""
        return self.normalize(self.encode_raw(images, mode))

    def decode_raw(self, z: Float[Tensor, "B C h w"]) -> Float[Tensor, "B 3 H W"]:
        """Raw latents -> RGB images (H = f h, W = f w) on the [0, 1] scale, not clamped (for losses)."""
        if self.vae is None:
            return z
        with torch.autocast(z.device.type, enabled=False):
            return (self.vae.decode(z.float()).sample + 1.0) * 0.5

    def decode(self, latents: Float[Tensor, "B C h w"]) -> Float[Tensor, "B 3 H W"]:
        """Normalised latents -> RGB images (H = f h, W = f w) in [0, 1]."""
        return self.decode_raw(self.denormalize(latents)).clamp(0.0, 1.0)

    def set_statistics(self, shift: Float[Tensor, " C"], scale: Float[Tensor, " C"]) -> None:
        """Sets the tanh normalisation."""
        self.norm_shift.copy_(shift)
        self.norm_scale.copy_(scale)

    def check_size(self, height: int, width: int) -> None:
        """Raises when an image side is not a multiple of the downsampling factor."""
        f = self.downsample_factor
        if height % f or width % f:
            raise AutoencoderError(f"image size {height}x{width} is not a multiple of the autoencoder's factor {f}")

    def fingerprint(self) -> str:
        """A short hash of everything that changes the latents: weights, normalisation and encode mode."""
        digest = hashlib.sha256()
        digest.update(f"{self.normalization}|{self.config.encode_mode}|{self.downsample_factor}".encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
