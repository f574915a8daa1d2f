"""Basis checkpoint: the shared part of a trained collection (basis planes, MLP, autoencoder, normalisation)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latent_triplane_ns.atomic import atomic_directory
from latent_triplane_ns.autoencoder import AutoencoderConfig, LatentAutoencoder, folder_latent_size, load_pretrained_vae
from latent_triplane_ns.distributed.sync import gather_on_main
from latent_triplane_ns.errors import InputError

if TYPE_CHECKING:
    from latent_triplane_ns.field import TriplaneField

FORMAT = "latent-triplane-ns basis"
VERSION = 2
"""Version 2 added `step` and `complete`."""
SETTINGS_FILE = "basis.json"
TENSORS_FILE = "basis.safetensors"
SCENES_FILE = "scenes.safetensors"
AUTOENCODER_DIR = "autoencoder"
REQUIRED_FILES = (SETTINGS_FILE, TENSORS_FILE)
"""Files every basis checkpoint holds (the autoencoder folder too, unless it was trained with the identity)."""


class BasisCheckpointError(InputError):
    """A basis checkpoint that is missing, malformed, or does not fit the model asked for."""


@dataclass(frozen=True)
class BasisSettings:
    """The contents of `basis.json`: the sizes, autoencoder settings and collection that made a basis."""

    plane_resolution: int
    """Side of every plane."""
    macro_features: int
    """Features per plane of the basis (F_mac)."""
    num_basis: int
    """Basis plane sets (M)."""
    num_features: int
    """Features per plane of a scene (F_mic + F_mac) that the MLP reads."""
    trained_micro_features: int
    """F_mic of the scenes the basis was trained with."""
    mlp_hidden_width: int
    """Hidden width of the shared MLP."""
    latent_channels: int
    """Channels of the latent images (3: RGB, with the identity autoencoder)."""
    downsample_factor: int
    """Image side / latent side of the autoencoder."""
    autoencoder: str
    """'identity', or the name of the subfolder holding the AutoencoderKL."""
    encode_mode: Literal["mean", "sample"]
    """Latent target of an image."""
    normalization: Literal["tanh", "none"]
    """Latent normalisation."""
    tanh_scale: Tuple[float, ...]
    """Per-channel tanh scale."""
    tanh_shift: Tuple[float, ...]
    """Per-channel tanh shift."""
    scene_names: Tuple[str, ...]
    """Folder names of the collection's scenes, in scene-index order."""
    step: int
    """Training step of the run when it was written."""
    complete: bool
    """Whether the run that wrote it had finished (False: a periodic save of a run that may have been killed)."""

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        names = list(data.pop("scene_names"))
        for key in ("tanh_scale", "tanh_shift"):
            data[key] = list(data[key])
        return {
            "format": FORMAT,
            "version": VERSION,
            **data,
            "collection": {"num_scenes": len(names), "scene_names": names},
        }

    @classmethod
    def from_json(cls, data: Any, source: Path) -> BasisSettings:
        """Reads `basis.json` contents, with one clear error naming `source` for anything wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise BasisCheckpointError(f"{source}: not a basis checkpoint (format {found!r})")
        if data.get("version") != VERSION:
            raise BasisCheckpointError(
                f"{source}: basis checkpoint version {data.get('version')!r}, this latent-triplane-ns reads version "
                f"{VERSION}; write the basis again with this version"
            )
        wanted = [f.name for f in fields(cls) if f.name != "scene_names"]
        missing = [k for k in wanted if k not in data]
        collection = data.get("collection")
        if not isinstance(collection, dict) or not isinstance(collection.get("scene_names"), list):
            missing.append("collection.scene_names")
        if missing:
            raise BasisCheckpointError(f"{source}: basis checkpoint lacks {', '.join(missing)}")
        values = {k: data[k] for k in wanted}
        try:
            for key in ("tanh_scale", "tanh_shift"):
                values[key] = tuple(float(v) for v in values[key])
            for key in ("plane_resolution", "macro_features", "num_basis", "num_features", "trained_micro_features"):
                values[key] = int(values[key])
            values["mlp_hidden_width"] = int(values["mlp_hidden_width"])
            values["latent_channels"] = int(values["latent_channels"])
            values["downsample_factor"] = int(values["downsample_factor"])
            values["step"] = int(values["step"])
            if not isinstance(values["complete"], bool):
                raise ValueError(f"complete is {values['complete']!r}, not true or false")
        except (TypeError, ValueError) as err:
            raise BasisCheckpointError(f"{source}: basis checkpoint holds a malformed value ({err})") from err
        return cls(**values, scene_names=tuple(str(n) for n in collection["scene_names"]))

    @property
    def micro_features(self) -> int:
        """F_mic of a model that fits this basis: num_features - macro_features."""
        return self.num_features - self.macro_features


@dataclass
class BasisCheckpoint:
    """A basis checkpoint read from disk."""

    path: Path
    settings: BasisSettings
    tensors: Dict[str, torch.Tensor]
    scenes: Dict[str, torch.Tensor]

    def check_complete(self) -> None:
        """Raises when the run that wrote the basis had not finished (killed, or still training)."""
        if not self.settings.complete:
            raise BasisCheckpointError(
                f"{self.path / SETTINGS_FILE}: written at step {self.settings.step} of a run that had not finished "
                "(killed, or still training); finish or resume that run, or learn against it anyway with "
                "--pipeline.model.allow-incomplete-basis True"
            )

    def fit_config(self, config: Any) -> List[str]:
        """Sets the plane and MLP sizes of a model config to the ones this basis was made with (the MLP reads F_mic +
        F_mac features, so F_mic follows too); returns the changes made, as 'name: old -> new'."""
        s = self.settings
        sizes = {
            "plane_resolution": s.plane_resolution,
            "micro_features": s.micro_features,
            "macro_features": s.macro_features,
            "num_basis": s.num_basis,
            "mlp_hidden_width": s.mlp_hidden_width,
        }
        changed = [f"{k}: {getattr(config, k)} -> {v}" for k, v in sizes.items() if getattr(config, k) != v]
        for key, value in sizes.items():
            setattr(config, key, value)
        return changed

    def check_autoencoder(self, folder: Path) -> None:
        """Raises, naming both, when the autoencoder in `folder` has another latent size (channels, downsampling) than
        the one this basis was trained with: the basis's planes and MLP live in that latent space only."""
        if self.settings.autoencoder == "identity":
            theirs = (3, 1)
        else:
            theirs = folder_latent_size(self.path / self.settings.autoencoder)
        mine = folder_latent_size(folder)
        if mine != theirs:
            raise BasisCheckpointError(
                f"{folder}: an autoencoder of {mine[0]} latent channels at {mine[1]}x downsampling, while the basis "
                f"{self.path} was trained with one of {theirs[0]} channels at {theirs[1]}x: its planes and MLP do not "
                "fit that latent space (give one of them only)"
            )

    def autoencoder_config(self) -> AutoencoderConfig:
        """The autoencoder settings the basis was trained with: its folder, normalisation, encode mode, background."""
        s = self.settings
        identity = s.autoencoder == "identity"
        return AutoencoderConfig(
            source="identity" if identity else "pretrained",
            pretrained_path=None if identity else self.path / s.autoencoder,
            encode_mode=s.encode_mode,
            normalization=s.normalization,
            tanh_scale=s.tanh_scale,
            tanh_shift=s.tanh_shift,
        )

    def build_autoencoder(self) -> LatentAutoencoder:
        """The autoencoder with the normalisation, encode mode and background the basis was trained with."""
        config = self.autoencoder_config()
        vae = None if config.pretrained_path is None else load_pretrained_vae(config.pretrained_path)
        return LatentAutoencoder(config, vae=vae)

    def load_into(self, field: TriplaneField, scene_names: List[str]) -> List[str]:
        """Copies the basis planes and the MLP weights into a field built with matching sizes, and the planes of
        every scene of `scene_names` that the basis was trained with (by folder name; others keep their fresh
        planes). Returns the names of the scenes copied.

        Raises:
            BasisCheckpointError: scenes were asked for and the stored planes have another shape, or the MLP
                weights do not fit.
        """
        planes = field.triplanes
        trained = list(self.settings.scene_names)
        shared = [n for n in scene_names if n in trained]
        if shared and (not self.scenes or self.scenes["micro"].shape[1:] != planes.micro.shape[1:]):
            stored = tuple(self.scenes["micro"].shape[1:]) if self.scenes else "no scene planes"
            raise BasisCheckpointError(
                f"{self.path / SCENES_FILE}: its scenes' micro planes are {stored}, this model's "
                f"{tuple(planes.micro.shape[1:])}: they cannot start the scenes {shared[:3]}"
            )
        with torch.no_grad():
            planes.basis.copy_(self.tensors["basis"])
            for name in shared:
                planes.micro[scene_names.index(name)] = self.scenes["micro"][trained.index(name)]
                planes.weights[scene_names.index(name)] = self.scenes["weights"][trained.index(name)]
            mlp_state = {k[len("mlp.") :]: v for k, v in self.tensors.items() if k.startswith("mlp.")}
            try:
                field.mlp.load_state_dict(mlp_state)
            except RuntimeError as err:
                raise BasisCheckpointError(f"{self.path / TENSORS_FILE}: MLP weights do not fit ({err})") from err
        return shared


def _load_tensors(path: Path) -> Dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise BasisCheckpointError(f"{path}: damaged or not a safetensors file ({err})") from err


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
        settings = BasisSettings.from_json(json.loads(settings_file.read_text()), settings_file)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BasisCheckpointError(f"{settings_file}: not valid JSON ({err})") from err
    tensors = _load_tensors(tensors_file)
    if "basis" not in tensors:
        raise BasisCheckpointError(f"{tensors_file}: holds no 'basis' tensor")
    scenes = _load_tensors(path / SCENES_FILE) if (path / SCENES_FILE).is_file() else {}
    return BasisCheckpoint(path=path, settings=settings, tensors=tensors, scenes=scenes)


def write_basis_checkpoint(model: Any, path: Path, step: int, complete: bool) -> Path:
    """Writes the shared part of a trained model to `path`, replacing an earlier basis checkpoint atomically (any
    other existing folder is refused). `step` and `complete` record how far the run that wrote it had got.

    Layout: `autoencoder/` (diffusers `save_pretrained`), `basis.safetensors` (basis planes and MLP weights),
    `scenes.safetensors` (micro planes and basis weights of the collection's scenes, so they can be rendered or
    fine-tuned again), `basis.json` (`BasisSettings`: sizes, normalisation, background latent, encode mode, the
    collection's scene names). No optimizer state and no absolute paths.

    In scene-parallel training every rank calls it: the ranks' scenes are gathered in rank order, and rank 0 writes.
    """
    field = model.field
    planes = field.triplanes
    local = {"micro": planes.micro.detach(), "weights": planes.weights.detach(), "names": list(model.scene_names)}
    shards = gather_on_main(local)
    if shards is None:
        return Path(path)
    scene_names = [name for shard in shards for name in shard["names"]]
    scenes = {key: torch.cat([shard[key] for shard in shards]).cpu().contiguous() for key in ("micro", "weights")}
    ae: LatentAutoencoder = model.autoencoder
    settings = BasisSettings(
        plane_resolution=planes.resolution,
        macro_features=int(planes.basis.shape[2]),
        num_basis=planes.num_basis,
        num_features=planes.num_features,
        trained_micro_features=int(planes.micro.shape[2]),
        mlp_hidden_width=int(model.config.mlp_hidden_width),
        latent_channels=ae.latent_channels,
        downsample_factor=ae.downsample_factor,
        autoencoder="identity" if ae.vae is None else AUTOENCODER_DIR,
        encode_mode=ae.config.encode_mode,
        normalization=ae.normalization,
        tanh_scale=tuple(ae.norm_scale.tolist()),
        tanh_shift=tuple(ae.norm_shift.tolist()),
        scene_names=tuple(scene_names),
        step=int(step),
        complete=bool(complete),
    )
    tensors = {"basis": planes.basis.detach().cpu().contiguous()}
    tensors.update({f"mlp.{k}": v.detach().cpu().contiguous() for k, v in field.mlp.state_dict().items()})
    with atomic_directory(Path(path), marker=SETTINGS_FILE) as tmp:
        save_file(tensors, str(tmp / TENSORS_FILE))
        save_file(scenes, str(tmp / SCENES_FILE))
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings.to_json(), indent=2))
        if ae.vae is not None:
            ae.vae.save_pretrained(str(tmp / AUTOENCODER_DIR), safe_serialization=True)
    return Path(path)
