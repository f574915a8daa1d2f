"""Basis checkpoint: the shared part of a trained collection (basis planes, MLP, autoencoder, normalisation)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch
from safetensors.torch import load_file, save_file

from latent_triplane_ns.autoencoder import AutoencoderConfig, LatentAutoencoder, load_pretrained_vae
from latent_triplane_ns.errors import InputError

if TYPE_CHECKING:
    from latent_triplane_ns.field import TriplaneField

FORMAT = "latent-triplane-ns basis"
VERSION = 1
SETTINGS_FILE = "basis.json"
TENSORS_FILE = "basis.safetensors"
SCENES_FILE = "scenes.safetensors"
AUTOENCODER_DIR = "autoencoder"
REQUIRED_FILES = (SETTINGS_FILE, TENSORS_FILE)
"""Files every basis checkpoint holds (the autoencoder folder too, unless it was trained with the identity)."""


class BasisCheckpointError(InputError):
    """A basis checkpoint that is missing, malformed, or does not fit the model asked for."""


@dataclass
class BasisCheckpoint:
    """A basis checkpoint read from disk."""

    path: Path
    settings: Dict[str, Any]
    tensors: Dict[str, torch.Tensor]
    scenes: Dict[str, torch.Tensor]

    def check_compatible(self, config: Any) -> None:
        """Raises when the model config asks for other plane or MLP sizes than the checkpoint holds."""
        wanted = {
            "plane_resolution": config.plane_resolution,
            "macro_features": config.macro_features,
            "num_basis": config.num_basis,
            "mlp_hidden_width": config.mlp_hidden_width,
            "num_features": config.micro_features + config.macro_features,
        }
        wrong = [f"{k}: model {v} vs checkpoint {self.settings[k]}" for k, v in wanted.items() if self.settings[k] != v]
        if wrong:
            raise BasisCheckpointError(f"{self.path / SETTINGS_FILE}: does not fit this model ({'; '.join(wrong)})")

    def build_autoencoder(self) -> LatentAutoencoder:
        """The autoencoder with the normalisation, encode mode and background the basis was trained with."""
        s = self.settings
        config = AutoencoderConfig(
            source="identity" if s["autoencoder"] == "identity" else "pretrained",
            pretrained_path=self.path / AUTOENCODER_DIR if s["autoencoder"] != "identity" else None,
            encode_mode=s["encode_mode"],
            normalization=s["normalization"],
            tanh_scale=tuple(s["tanh_scale"]),
            tanh_shift=tuple(s["tanh_shift"]),
            background_latent=tuple(s["background_latent"]),
        )
        vae = None if s["autoencoder"] == "identity" else load_pretrained_vae(self.path / AUTOENCODER_DIR)
        if vae is None and config.source == "pretrained":
            raise BasisCheckpointError(f"{self.path / AUTOENCODER_DIR}: missing autoencoder")
        return LatentAutoencoder(config, vae=vae)

    def load_into(self, field: TriplaneField, scene_names: List[str]) -> List[str]:
        """Copies the basis planes and the MLP weights into a field built with matching sizes, and the planes of
        every scene of `scene_names` that the basis was trained with (by folder name; others keep their fresh
        planes). Returns the names of the scenes copied."""
        planes = field.triplanes
        trained = list(self.settings["collection"]["scene_names"])
        shared = [n for n in scene_names if n in trained] if self.scenes else []
        with torch.no_grad():
            planes.basis.copy_(self.tensors["basis"])
            if shared and self.scenes["micro"].shape[1:] == planes.micro.shape[1:]:
                for name in shared:
                    planes.micro[scene_names.index(name)] = self.scenes["micro"][trained.index(name)]
                    planes.weights[scene_names.index(name)] = self.scenes["weights"][trained.index(name)]
            else:
                shared = []
            mlp_state = {k[len("mlp.") :]: v for k, v in self.tensors.items() if k.startswith("mlp.")}
            try:
                field.mlp.load_state_dict(mlp_state)
            except RuntimeError as err:
                raise BasisCheckpointError(f"{self.path / TENSORS_FILE}: MLP weights do not fit ({err})") from err
        return shared


def missing_file(path: Path) -> Optional[Path]:
    """The first file a model needs from the basis checkpoint at `path` that is not there (None: all are)."""
    path = Path(path)
    for required in (path / name for name in REQUIRED_FILES):
        if not required.is_file():
            return required
    try:
        identity = json.loads((path / SETTINGS_FILE).read_text()).get("autoencoder") == "identity"
    except json.JSONDecodeError:
        return None  # present but malformed: reading it gives the error
    autoencoder_config = path / AUTOENCODER_DIR / "config.json"
    return None if identity or autoencoder_config.is_file() else autoencoder_config


def read_basis_checkpoint(path: Path) -> BasisCheckpoint:
    """Reads a basis checkpoint directory, with a clear error for anything missing or malformed."""
    path = Path(path)
    settings_file, tensors_file = path / SETTINGS_FILE, path / TENSORS_FILE
    if not path.is_dir():
        raise BasisCheckpointError(f"{path}: basis checkpoint directory does not exist")
    for required in (path / name for name in REQUIRED_FILES):
        if not required.is_file():
            raise BasisCheckpointError(f"{required}: missing; {path} is not a basis checkpoint")
    try:
        settings = json.loads(settings_file.read_text())
    except json.JSONDecodeError as err:
        raise BasisCheckpointError(f"{settings_file}: not valid JSON ({err})") from err
    if settings.get("format") != FORMAT:
        raise BasisCheckpointError(f"{settings_file}: not a basis checkpoint (format {settings.get('format')!r})")
    tensors = load_file(str(tensors_file))
    if "basis" not in tensors:
        raise BasisCheckpointError(f"{tensors_file}: holds no 'basis' tensor")
    scenes = load_file(str(path / SCENES_FILE)) if (path / SCENES_FILE).is_file() else {}
    return BasisCheckpoint(path=path, settings=settings, tensors=tensors, scenes=scenes)


def write_basis_checkpoint(model: Any, path: Path, extra: Optional[Dict[str, Any]] = None) -> Path:
    """Writes the shared part of a trained model to `path`, replacing it atomically.

    Layout: `autoencoder/` (diffusers `save_pretrained`), `basis.safetensors` (basis planes and MLP weights),
    `scenes.safetensors` (micro planes and basis weights of the collection's scenes, so they can be rendered or
    fine-tuned again), `basis.json` (sizes, normalisation, background latent, encode mode, the collection's scene
    names). No optimizer state and no absolute paths.
    """
    path = Path(path)
    field = model.field
    ae: LatentAutoencoder = model.autoencoder
    planes = field.triplanes
    settings = {
        "format": FORMAT,
        "version": VERSION,
        "plane_resolution": planes.resolution,
        "macro_features": int(planes.basis.shape[2]),
        "num_basis": planes.num_basis,
        "num_features": planes.num_features,
        "trained_micro_features": int(planes.micro.shape[2]),
        "mlp_hidden_width": int(model.config.mlp_hidden_width),
        "latent_channels": ae.latent_channels,
        "downsample_factor": ae.downsample_factor,
        "autoencoder": "identity" if ae.vae is None else AUTOENCODER_DIR,
        "encode_mode": ae.config.encode_mode,
        "normalization": ae.normalization,
        "tanh_scale": ae.norm_scale.tolist(),
        "tanh_shift": ae.norm_shift.tolist(),
        "background_latent": ae.background_latent.tolist(),
        "collection": {"num_scenes": planes.num_scenes, "scene_names": list(model.scene_names)},
        **(extra or {}),
    }
    tensors = {"basis": planes.basis.detach().cpu().contiguous()}
    tensors.update({f"mlp.{k}": v.detach().cpu().contiguous() for k, v in field.mlp.state_dict().items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(tensors, str(tmp / TENSORS_FILE))
        scenes = {
            "micro": planes.micro.detach().cpu().contiguous(),
            "weights": planes.weights.detach().cpu().contiguous(),
        }
        save_file(scenes, str(tmp / SCENES_FILE))
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
        if ae.vae is not None:
            ae.vae.save_pretrained(str(tmp / AUTOENCODER_DIR), safe_serialization=True)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
