"""Training the compact autoencoder as a plain image autoencoder on a collection (the one-off AE warm-up)."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from latent_triplane_ns.atomic import atomic_directory, atomic_file, check_replaceable
from latent_triplane_ns.autoencoder import (
    LATENT_STATS_FILE,
    CompactAEConfig,
    encode_latents,
    load_pretrained_vae,
    vae_downsample_factor,
)
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.evaluation import psnr_from_mse

TRAINING_LOG_FILE = "ltn_ae_training.json"
"""Progress curve and settings written beside the trained autoencoder."""
WORK_SUFFIX = ".partial"
"""Suffix of the work folder beside an autoencoder folder that holds the checkpoints of its unfinished run."""
WORK_MARKER = "ltn_ae_unfinished.json"
"""Marker of a work folder (`<output_dir>.partial`): the settings and images of the unfinished run it belongs to."""
CHECKPOINT_FILE = "checkpoint.pt"
"""The latest checkpoint of an unfinished run, inside its work folder."""


@dataclass
class AETrainingConfig:
    """How the compact autoencoder is trained from scratch on the collection's training images."""

    architecture: CompactAEConfig = field(
        default_factory=lambda: CompactAEConfig(kind="tiny", block_out_channels=(64, 64, 64))
    )
    """The compact autoencoder trained. By default an AutoencoderTiny with 4x downsampling (3 levels of 64) and 4
    latent channels, the shipped autoencoder's architecture (docs/autoencoder.md compares it with an 8x one)."""
    start_from: Optional[Path] = None
    """An autoencoder folder (AutoencoderKL or AutoencoderTiny; `shipped` for the one inside the package) to fine-tune
    from its weights, a one-off adaptation to a collection's family; its own architecture replaces `architecture`.
    None: a fresh autoencoder of `architecture`, trained from scratch."""
    batch_size: int = 8
    """Images per step."""
    crop_size: Optional[int] = 64
    """Train on random square crops of this side (a multiple of the downsampling; images smaller than it are refused);
    None: whole images. A 64 px crop of a 128 px view costs a quarter of a step on the whole view (docs/experiments.md
    measures the recipe's levers)."""
    lr: float = 2e-3
    """Peak Adam learning rate (cosine decay to 5% over the budget, after a short warm-up)."""
    kl_weight: float = 1e-6
    """Weight of the KL term of the posterior; tiny, as for SD's VAE."""
    object_weight: float = 10.0
    """Weight of the reconstruction error on object pixels (those that differ from the white background) against
    1 on the background; the loss is the weighted mean. Objects covering a tenth of a view get a tenth of a plain
    MSE, so their colours are learned last. 1: the plain MSE."""
    equivariance_weight: float = 0.5
    """Weight of an equivariance loss in the spirit of EQ-VAE: the decoder must turn a spatially transformed latent
    (a random quarter turn, and half the time also halved in size) into the same transform of the image. It asks
    for a latent that behaves like an image under moves, which the Tri-Planes must reproduce from every view. 0: off."""
    ema_decay: Optional[float] = None
    """Decay of an exponential moving average of the weights (torch's `AveragedModel`, the decay warmed up as in
    diffusers' `EMAModel`, see `ema_average`); the average is what is measured, kept as the best and saved. None: the
    raw weights."""
    max_minutes: float = 10.0
    """Wall-clock budget of the training."""
    max_steps: int = 100_000
    """Step budget of the training (whichever budget runs out first)."""
    eval_every_seconds: float = 30.0
    """Seconds of training between held-out reconstruction PSNR measurements (which pick the best weights)."""
    eval_images: int = 24
    """Held-out images, evenly spread over the held-out set, measured during training."""
    seed: int = 0
    """Seed of the weights' initialisation and of the batch order."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Compute precision of the training steps (weights stay fp32): 'auto' uses bf16 autocast where the device
    runs it natively (CUDA, or CPUs with AVX-512 BF16 / AMX: about 2x faster here), fp32 elsewhere."""
    checkpoint_every_seconds: float = 60.0
    """Seconds of training between checkpoints (weights, optimizer, step, clock, random state, best weights and
    curve) written atomically to the work folder `<output_dir>.partial`; rerunning the same command after a kill
    resumes from the latest one. 0 writes one after every step."""


RESUMABLE_CHANGES = ("max_minutes", "max_steps", "eval_every_seconds", "checkpoint_every_seconds")
"""Settings a rerun may change and still resume an unfinished run: its budgets (the decay then follows the new
budget from the step reached) and how often it measures and saves. Any other change refuses to resume."""


def bf16_is_fast(device: str) -> bool:
    """Whether bf16 autocast runs natively on this device."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


WARMUP_STEPS = 50
"""Steps of linear learning-rate warm-up at the start of the training."""


def ema_average(decay: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """`AveragedModel`'s update of one averaged tensor by the current one after n updates: an exponential moving
    average whose decay warms up as diffusers' `EMAModel` does by default, min(decay, (1 + n) / (10 + n)). Without
    the warm-up the first weights, close to the random ones, linger in the average for many steps."""

    def average(averaged: Tensor, current: Tensor, updates: Tensor) -> Tensor:
        rate = torch.clamp((1.0 + updates) / (10.0 + updates), max=decay).to(averaged.dtype)
        return averaged * rate + current * (1.0 - rate)

    return average


def learning_rate(config: AETrainingConfig, step: int, elapsed_seconds: float) -> float:
    """The learning rate of a step: a linear warm-up, then a cosine decay to 5% of `config.lr` whose progress is
    set by whichever budget (minutes or steps) is nearer to running out."""
    progress = min(1.0, max(elapsed_seconds / (config.max_minutes * 60.0), step / config.max_steps))
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    return config.lr * warmup * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class AETrainingResult:
    """What a training run reached."""

    eval_psnr: float
    steps: int
    seconds: float
    curve: List[Dict[str, float]] = field(default_factory=list)
    resumed: List[Dict[str, float]] = field(default_factory=list)
    """{"step", "seconds"} of every checkpoint the run was resumed from, in order; empty for a run never killed."""


RECIPE_RANGE = 2.0
"""The recipe's images span [-1, 1] (Stable Diffusion's convention): its MSE is on that scale."""


def object_mask(images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B 1 H W"]:
    """1 where a pixel differs from the white background by more than one 8-bit level in any channel, else 0."""
    return ((1.0 - images).amax(dim=1, keepdim=True) > 1.0 / 255).float()


LatentTransform = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]
"""A spatial transform applied alike to latents (B, C, h, w) and their images (B, 3, H, W) in [0, 1]."""


def random_transform(generator: torch.Generator) -> LatentTransform:
    """A random equivariance transform: a quarter turn by 1, 2 or 3, and half the time also halved in size (area
    averaging, on the latent and the image alike)."""
    turns = int(torch.randint(1, 4, (1,), generator=generator))
    halve = bool(torch.rand(1, generator=generator) < 0.5)

    def transform(z: Tensor, images: Tensor) -> Tuple[Tensor, Tensor]:
        z, images = torch.rot90(z, turns, dims=(2, 3)), torch.rot90(images, turns, dims=(2, 3))
        if halve:
            z, images = F.avg_pool2d(z, 2), F.avg_pool2d(images, 2)
        return z, images

    return transform


def weighted_mse(
    reconstruction: Float[Tensor, "B 3 H W"], images: Float[Tensor, "B 3 H W"], object_weight: float = 1.0
) -> Float[Tensor, ""]:
    """MSE of a reconstruction on the [-1, 1] scale against images in [0, 1], the object's pixels (`object_mask`)
    weighted `object_weight` times against 1 on the background (the weighted mean; 1: the plain MSE)."""
    x = images.float() * 2.0 - 1.0
    if object_weight == 1.0:
        return F.mse_loss(reconstruction.float(), x)
    weight = 1.0 + (object_weight - 1.0) * object_mask(images.float())
    squared = (reconstruction.float() - x).pow(2).mean(dim=1, keepdim=True)
    return (weight * squared).sum() / weight.sum()


def training_losses(
    vae, images: Float[Tensor, "B 3 H W"], object_weight: float = 1.0, transform: Optional[LatentTransform] = None
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """`autoencoder_losses`, and the equivariance loss of the same latents under `transform` (None without one):
    the weighted MSE of D(T(z)) against T(image)."""
    z, kl = encode_latents(vae, images * 2.0 - 1.0, mode="sample")
    mse = weighted_mse(vae.decode(z).sample, images, object_weight)
    kl = kl if kl is not None else images.new_zeros(())
    if transform is None:
        return mse, kl, None
    moved_z, moved_images = transform(z, images)
    return mse, kl, weighted_mse(vae.decode(moved_z).sample, moved_images, object_weight)


def autoencoder_losses(vae, images: Float[Tensor, "B 3 H W"], object_weight: float = 1.0) -> Tuple[Tensor, Tensor]:
    """The compact autoencoder's training losses, shared by `ltn-train-ae` and stage 1's warm-up: the MSE of the
    reconstruction of a posterior draw, on the [-1, 1] scale, and the posterior's mean KL divergence (0 for an
    AutoencoderTiny, whose latent is deterministic).

    Args:
        vae: the AutoencoderKL or AutoencoderTiny.
        images: RGB images in [0, 1].
        object_weight: weight of the object's pixels (`object_mask`) against 1 on the background; the MSE is the
            weighted mean (1: the plain MSE).
    """
    mse, kl, _ = training_losses(vae, images, object_weight)
    return mse, kl


def _reconstructions(vae, images: Tensor, batch_size: int, bf16: bool = False):
    """(x, D(mean E(x))) in [0, 1], batch by batch, with the autoencoder in eval mode meanwhile."""
    vae.eval()
    device = next(vae.parameters()).device
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            recon = vae.decode(encode_latents(vae, x * 2 - 1)[0]).sample
        yield x, recon.float().add(1).mul(0.5).clamp(0, 1)
    vae.train()


@torch.no_grad()
def reconstruction_psnr(vae, images: Float[Tensor, "N 3 H W"], batch_size: int = 16, bf16: bool = False) -> float:
    """Mean over images in [0, 1] of the PSNR of D(mean E(x)) against x."""
    total, count = 0.0, 0
    for x, recon in _reconstructions(vae, images, batch_size, bf16):
        total += float(psnr_from_mse((recon - x).pow(2).flatten(1).mean(1)).sum())
        count += x.shape[0]
    return total / max(count, 1)


@torch.no_grad()
def object_psnr(vae, images: Float[Tensor, "N 3 H W"], batch_size: int = 16) -> float:
    """PSNR of D(mean E(x)) against x over the object's pixels only (`object_mask`), pooled over the images: the
    colours and details that a PSNR over whole views, mostly white background, hides."""
    error, pixels = 0.0, 0.0
    for x, recon in _reconstructions(vae, images, batch_size):
        mask = object_mask(x)
        error += float(((recon - x).pow(2).mean(dim=1, keepdim=True) * mask).sum())
        pixels += float(mask.sum())
    return float(psnr_from_mse(torch.tensor(error / max(pixels, 1.0))))


@torch.no_grad()
def latent_statistics(vae, images: Float[Tensor, "N 3 H W"], batch_size: int = 16) -> Dict[str, List[float]]:
    """Per-channel tanh normalisation of the mean latents: shift = mean, scale = 0.5 / std, so one standard
    deviation maps to tanh(0.5) and the normalised latents use most of [0, 1] without saturating."""
    vae.eval()
    device = next(vae.parameters()).device
    latents = torch.cat(
        [
            encode_latents(vae, images[s : s + batch_size].to(device) * 2 - 1)[0].cpu()
            for s in range(0, images.shape[0], batch_size)
        ]
    )
    mean = latents.mean(dim=(0, 2, 3))
    std = latents.std(dim=(0, 2, 3)).clamp_min(1e-6)
    vae.train()
    return {"shift": mean.tolist(), "scale": (0.5 / std).tolist()}


def train_autoencoder(
    config: AETrainingConfig,
    train_images: Float[Tensor, "N 3 H W"],
    eval_images: Float[Tensor, "M 3 H W"],
    device: str = "cpu",
    on_progress: Optional[Callable[[Dict[str, float]], None]] = None,
    vae=None,
    resume: Optional[Dict[str, Any]] = None,
    save_checkpoint: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Tuple[object, AETrainingResult]:
    """Trains an autoencoder on (N, 3, H, W) images in [0, 1] until a budget runs out; keeps the best weights.

    Args:
        config: the recipe and budget.
        train_images: images it learns from.
        eval_images: held-out images whose reconstruction PSNR is measured and used to keep the best weights.
        device: torch device.
        on_progress: called with {"step", "seconds", "train_psnr", "eval_psnr"?} after every step.
        vae: start from these weights instead of a fresh compact autoencoder.
        resume: a training state that `save_checkpoint` was given: training continues from it (weights, optimizer,
            step, clock, random state, best weights and curve), as if it had never stopped.
        save_checkpoint: called with the training state every `config.checkpoint_every_seconds` of training and
            once when the budget is spent (the state is the caller's to keep; see `TrainingCheckpoints`).
    """
    torch.manual_seed(config.seed)
    if vae is None:
        vae = config.architecture.build()
    progress_images = eval_images[:: max(1, eval_images.shape[0] // config.eval_images)][: config.eval_images]
    vae = vae.to(device).train()
    vae.requires_grad_(True)
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.lr)
    ema = None
    if config.ema_decay is not None:
        ema = AveragedModel(vae, avg_fn=ema_average(config.ema_decay), use_buffers=True)
    measured = vae if ema is None else ema.module  # the weights measured, kept as the best and returned
    generator = torch.Generator().manual_seed(config.seed)
    budget = config.max_minutes * 60.0
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_is_fast(device))
    last_eval = -math.inf
    best = (-math.inf, None)
    curve: List[Dict[str, float]] = []
    resumed: List[Dict[str, float]] = []
    step, elapsed = 0, 0.0
    if resume is not None:
        vae.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if ema is not None:
            ema.load_state_dict(resume["ema"])
        step, elapsed, last_eval = int(resume["step"]), float(resume["seconds"]), float(resume["last_eval"])
        best = (float(resume["best_psnr"]), resume["best_model"])
        curve, resumed = list(resume["curve"]), [*resume["resumed"], {"step": step, "seconds": round(elapsed, 3)}]
        torch.set_rng_state(resume["rng"]["torch"])
        generator.set_state(resume["rng"]["batches"])
        if resume["rng"].get("cuda") is not None and device.startswith("cuda"):
            torch.cuda.set_rng_state(resume["rng"]["cuda"], device)
    # the clock continues where the checkpoint left it: time spent after it by a killed run is not counted
    start = time.perf_counter() - elapsed
    last_checkpoint, saved_step = elapsed, step

    def checkpoint() -> float:
        now = time.perf_counter() - start  # after this step's measurement: a resumed clock never runs behind it
        save_checkpoint(
            {
                "step": step,
                "seconds": now,
                "last_eval": last_eval,
                "model": vae.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "best_psnr": best[0],
                "best_model": best[1],
                "curve": curve,
                "resumed": resumed,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "batches": generator.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.startswith("cuda") else None,
                },
            }
        )
        return now

    n, _, height, width = train_images.shape
    while step < config.max_steps:
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            break
        lr = learning_rate(config, step, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, n, (config.batch_size,), generator=generator)
        x = train_images[index]
        if config.crop_size is not None and config.crop_size < min(height, width):
            top = int(torch.randint(0, (height - config.crop_size) // 8 + 1, (1,), generator=generator)) * 8
            left = int(torch.randint(0, (width - config.crop_size) // 8 + 1, (1,), generator=generator)) * 8
            x = x[:, :, top : top + config.crop_size, left : left + config.crop_size]
        transform = random_transform(generator) if config.equivariance_weight > 0 else None
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            mse, kl, equivariance = training_losses(vae, x.to(device), config.object_weight, transform)
        loss = mse + config.kl_weight * kl
        if equivariance is not None:
            loss = loss + config.equivariance_weight * equivariance
        if not torch.isfinite(loss):
            raise FloatingPointError(f"autoencoder loss became {float(loss)} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(vae)
        step += 1
        now = time.perf_counter() - start
        record = {
            "step": step,
            "seconds": now,
            "lr": lr,
            "train_psnr": float(psnr_from_mse(mse.detach(), RECIPE_RANGE)),
        }
        if equivariance is not None:
            record["equivariance_psnr"] = float(psnr_from_mse(equivariance.detach(), RECIPE_RANGE))
        finishing = now >= budget or step >= config.max_steps
        if now - last_eval >= config.eval_every_seconds or finishing:
            # On a fixed subset, so that measuring stays a small part of the budget; the clock restarts after it.
            record["eval_psnr"] = reconstruction_psnr(measured, progress_images, bf16=use_bf16)
            curve.append({k: round(v, 3) for k, v in record.items()})
            if record["eval_psnr"] > best[0]:
                best = (record["eval_psnr"], {k: v.detach().clone() for k, v in measured.state_dict().items()})
            last_eval = time.perf_counter() - start
        if save_checkpoint is not None and (finishing or now - last_checkpoint >= config.checkpoint_every_seconds):
            last_checkpoint, saved_step = checkpoint(), step
        if on_progress is not None:
            on_progress(record)
    seconds = time.perf_counter() - start
    if save_checkpoint is not None and step > saved_step:
        # the time budget ran out before the step budget: the state at the end, so a kill from here loses nothing
        checkpoint()
    if best[1] is not None:
        vae.load_state_dict(best[1])
    vae.requires_grad_(False)
    vae.eval()
    result = AETrainingResult(
        eval_psnr=reconstruction_psnr(vae, eval_images), steps=step, seconds=seconds, curve=curve, resumed=resumed
    )
    return vae, result


class UnfinishedRunError(InputError):
    """The work folder of an autoencoder folder holds an unfinished run that a rerun cannot resume: other settings,
    other images, or a checkpoint that cannot be read.

    Args:
        folder: the work folder, or the file in it at fault.
        reason: what is wrong, without the advice.
    """

    def __init__(self, folder: Path, reason: str):
        super().__init__(
            f"{folder}: {reason}; rerun with its settings to resume it, or pass --start-over to discard it"
        )
        self.folder, self.reason = Path(folder), reason


def work_folder(output_dir: Path) -> Path:
    """The work folder of an autoencoder folder: `<output_dir>.partial` beside it. It holds the marker and the latest
    checkpoint of an unfinished run, never a diffusers folder (no config.json), so it cannot be loaded as an
    autoencoder; it is removed once the autoencoder folder is written."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + WORK_SUFFIX)


def images_fingerprint(*image_sets: Tensor) -> str:
    """A short hash of image tensors: what tells a rerun on the same images from one on other images."""
    digest = hashlib.sha256()
    for images in image_sets:
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def settings_json(config: AETrainingConfig) -> Dict[str, Any]:
    """The settings as plain JSON types (a path as its text), as the training log and the resume marker keep them."""
    return json.loads(json.dumps(asdict(config), default=str))


def run_identity(config: AETrainingConfig, train_images: Tensor, eval_images: Tensor) -> Dict[str, Any]:
    """What must be the same for a rerun to resume an unfinished run: every setting but the budgets and cadences
    (`RESUMABLE_CHANGES`), and the training and held-out images."""
    settings = settings_json(config)
    return {
        "settings": {k: v for k, v in settings.items() if k not in RESUMABLE_CHANGES},
        "images": {
            "train": int(train_images.shape[0]),
            "held_out": int(eval_images.shape[0]),
            "fingerprint": images_fingerprint(train_images, eval_images),
        },
    }


def settings_differences(saved: Any, now: Any, prefix: str = "") -> List[str]:
    """`key: <saved> there, <now> now` for every leaf that differs between two JSON values."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out: List[str] = []
        for key in sorted(set(saved) | set(now)):
            out += settings_differences(saved.get(key), now.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == now else [f"{prefix[:-1]}: {saved!r} there, {now!r} now"]


class TrainingCheckpoints:
    """The work folder of one `ltn-train-ae` run (`work_folder`): its marker names the run's settings and images,
    its checkpoint is the latest training state, replaced atomically. A folder without the marker is never touched.

    Args:
        folder: the work folder.
        identity: `run_identity` of this run.
        data: where the images come from (shown in messages only: the images themselves are compared).
    """

    def __init__(self, folder: Path, identity: Dict[str, Any], data: str = ""):
        self.folder, self.identity, self.data = Path(folder), identity, data

    @property
    def checkpoint_file(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def open(self, start_over: bool = False) -> Optional[Dict[str, Any]]:
        """Prepares the work folder and returns the training state to resume from (None: start from step 0).

        Raises `UnfinishedRunError` when the folder holds an unfinished run of other settings or images, or a
        checkpoint that cannot be read, unless `start_over` (which discards it); `NotOurFolderError` when the
        folder is not one this package wrote.
        """
        check_replaceable(self.folder, WORK_MARKER)
        marker = self.folder / WORK_MARKER
        if self.folder.exists() and not start_over:
            try:
                saved = json.loads(marker.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise UnfinishedRunError(marker, f"not valid JSON ({err})") from err
            differences = settings_differences(saved.get("identity"), self.identity)
            if differences:
                raise UnfinishedRunError(
                    self.folder,
                    f"holds an unfinished ltn-train-ae run with other settings or images ({'; '.join(differences)}; "
                    f"its data: {saved.get('data') or '?'})",
                )
            if self.checkpoint_file.is_file():
                return self._read()
            return None  # killed before its first checkpoint: nothing to resume, the folder is reused
        # created (or, starting over, replaced) whole with its marker: a kill never leaves a folder without one
        with atomic_directory(self.folder, marker=WORK_MARKER) as tmp:
            record = {"written_by": "latent-triplane-ns ltn-train-ae", "data": self.data, "identity": self.identity}
            (tmp / WORK_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        return None

    def _read(self) -> Dict[str, Any]:
        try:
            state = torch.load(self.checkpoint_file, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
            raise UnfinishedRunError(
                self.checkpoint_file, f"the checkpoint cannot be read ({type(err).__name__})"
            ) from err
        if not isinstance(state, dict) or "step" not in state or "model" not in state:
            raise UnfinishedRunError(self.checkpoint_file, "not an ltn-train-ae checkpoint")
        return state

    def save(self, state: Dict[str, Any]) -> None:
        """Replaces the checkpoint atomically: a kill at any moment leaves the previous one or this one, whole."""
        atomic_file(self.checkpoint_file, lambda tmp: torch.save(state, tmp))

    def discard(self) -> None:
        """Removes the work folder (once the finished autoencoder folder is written)."""
        if (self.folder / WORK_MARKER).is_file():
            shutil.rmtree(self.folder, ignore_errors=True)


def save_trained_autoencoder(vae, output_dir: Path, stats: Dict[str, List[float]], log: Dict[str, object]) -> Path:
    """Writes the autoencoder (`save_pretrained`), its latent statistics and the training log (the folder's
    marker), replacing an earlier autoencoder folder atomically; any other existing folder is refused."""
    with atomic_directory(Path(output_dir), marker=TRAINING_LOG_FILE) as tmp:
        vae.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / LATENT_STATS_FILE).write_text(json.dumps(stats, indent=2))
        (tmp / TRAINING_LOG_FILE).write_text(json.dumps(log, indent=2))
    return Path(output_dir)


def load_collection_images(
    data, split: Literal["train", "test"], scene_range: Optional[Tuple[int, int]] = None, multiple_of: int = 1
) -> Float[Tensor, "N 3 H W"]:
    """All images of a collection's split in [0, 1], background composited, cropped at the top-left to sides that
    are multiples of `multiple_of` (as `ns-train` crops them for the autoencoder).

    Args:
        data: a scene-collection folder, or a collection dataparser config (any layout, its own scene selection).
        split: which images.
        scene_range: [start, stop) of the sorted scene folders of a folder `data`; all when None.
        multiple_of: the autoencoder's downsampling factor.
    """
    from latent_triplane_ns.dataparsers.collection import CollectionDataParserConfig, SceneCollectionDataParserConfig
    from latent_triplane_ns.images import ImageDataset

    if isinstance(data, CollectionDataParserConfig):
        parser_config = data
        data = parser_config.data
    else:
        parser_config = SceneCollectionDataParserConfig(data=Path(data), scene_range=scene_range)
    dataset = ImageDataset(parser_config.setup().get_dataparser_outputs(split=split))
    images = torch.stack([dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]).permute(0, 3, 1, 2)
    height, width = images.shape[-2] - images.shape[-2] % multiple_of, images.shape[-1] - images.shape[-1] % multiple_of
    if height < 1 or width < 1:
        raise InputError(
            f"{data}: images of {images.shape[-2]}x{images.shape[-1]} px are smaller than the autoencoder's factor "
            f"{multiple_of}"
        )
    return images[..., :height, :width]


def load_collections_images(
    collections: Sequence, split: Literal["train", "test"], scene_range: Optional[Tuple[int, int]], multiple_of: int
) -> Float[Tensor, "N 3 H W"]:
    """`load_collection_images` of several collections (of one image size), one after the other.

    Args:
        collections: scene-collection folders or collection dataparser configs, at least one.
        split: which images.
        scene_range: [start, stop) of the sorted scene folders of each folder; all when None.
        multiple_of: the autoencoder's downsampling factor.
    """
    if not collections:
        raise InputError("no collection given to learn the autoencoder from")
    parts = [load_collection_images(data, split, scene_range, multiple_of) for data in collections]
    for data, images in zip(collections[1:], parts[1:], strict=True):
        if images.shape[-2:] != parts[0].shape[-2:]:
            raise InputError(
                f"{collection_name(data)}: its {split} images are {images.shape[-2]}x{images.shape[-1]} px, those of "
                f"{collection_name(collections[0])} {parts[0].shape[-2]}x{parts[0].shape[-1]} px: an autoencoder "
                "learns from collections of one image size"
            )
    return torch.cat(parts)


def collection_name(data) -> str:
    """The folder a collection (a folder, or a collection dataparser config) reads."""
    return str(getattr(data, "data", data))


def check_crop(crop_size: Optional[int], images: Tensor, data: str) -> None:
    """Refuses a training crop larger than the images (N, 3, H, W) of the collection `data`, before training."""
    height, width = images.shape[-2:]
    if crop_size is not None and crop_size > min(height, width):
        raise InputError(
            f"{data}: its images are {height}x{width} px, smaller than the autoencoder training's crop_size of "
            f"{crop_size} px: give a crop no larger than the images, or None to train on whole images"
        )


def training_summary(log: Dict[str, Any]) -> Dict[str, Any]:
    """The one-off cost and result of a trained autoencoder, from its training log: seconds and steps of training,
    held-out reconstruction PSNR, parameters, the images it learned from, and the autoencoder it was fine-tuned from
    (None: trained from scratch)."""
    return {
        "seconds": log["seconds"],
        "steps": log["steps"],
        "held_out_psnr": log["eval_psnr"],
        "parameters": log["parameters"],
        "num_train_images": log["num_train_images"],
        "data": log.get("data"),
        "resumed": log.get("resumed", []),
        "start_from": log.get("settings", {}).get("start_from"),
        "start_from_training": log.get("start_from_training"),
    }


def one_off_seconds(summary: Dict[str, Any]) -> float:
    """Training seconds of a `training_summary` plus those of the autoencoders it was fine-tuned from, in turn (as
    far as their logs are known): the whole one-off cost of the weights."""
    earlier = summary.get("start_from_training")
    return summary["seconds"] + (one_off_seconds(earlier) if earlier else 0.0)


def read_training_summary(folder: Path) -> Optional[Dict[str, Any]]:
    """`training_summary` of an autoencoder folder that `ltn-train-ae` wrote; None for any other folder (a Stable
    Diffusion VAE, say), whose training cost is not known here."""
    path = Path(folder) / TRAINING_LOG_FILE
    if not path.is_file():
        return None
    try:
        return training_summary(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a training log of ltn-train-ae ({type(err).__name__}: {err})") from err


def describe_training(summary: Dict[str, Any]) -> str:
    """One line of a `training_summary`: what the autoencoder cost, once, and what it reached."""
    data = f" of {summary['data']}" if summary.get("data") else ""
    earlier = summary.get("start_from_training")
    start = (
        f", fine-tuned from {Path(summary['start_from']).name} (itself {describe_training(earlier)}): "
        f"{one_off_seconds(summary) / 60:.1f} min in all"
        if earlier
        else ""
    )
    return (
        f"trained by ltn-train-ae for {summary['seconds'] / 60:.1f} min ({summary['steps']:,} steps) on "
        f"{summary['num_train_images']:,} images{data}{start}, {summary['parameters']:,} parameters, held-out "
        f"reconstruction PSNR {summary['held_out_psnr']:.2f} dB"
    )


def progress_status(record: Dict[str, float]) -> str:
    """One line of a training record: step, training PSNR and the latest held-out PSNR."""
    return f"step {record['step']}  train {record['train_psnr']:.2f} dB  held-out {record.get('eval_psnr', math.nan):.2f} dB"


def train_and_save_autoencoder(
    config: AETrainingConfig,
    data,
    output_dir: Path,
    scene_range: Optional[Tuple[int, int]] = None,
    device: str = "cpu",
    on_progress: Optional[Callable[[Dict[str, float]], None]] = None,
    start_over: bool = False,
    on_message: Optional[Callable[[str], None]] = None,
) -> Dict[str, object]:
    """Trains the compact autoencoder on the training images of one collection or several (held-out images pick the
    best weights),
    writes it to `output_dir` with its latent statistics and training log, and returns the log.

    While it trains, checkpoints go to the work folder `<output_dir>.partial` (`work_folder`); a rerun with the same
    settings and images resumes from the latest one (its step, clock, learning-rate decay and random state
    continue), a rerun with others is refused (`UnfinishedRunError`) unless `start_over`.

    Args:
        config: the recipe and budget.
        data: the collection: a scene-collection folder, or a collection dataparser config; or a list of them, of
            one image size (several families, say), whose images are learnt together.
        output_dir: where the autoencoder folder is written (`save_trained_autoencoder`).
        scene_range: [start, stop) of the sorted scene folders of each collection to use; all when None.
        device: torch device.
        on_progress: called with every training record; `eval_psnr` always holds the latest held-out PSNR, and
            `evaluated` is 1 for the records of a step that measured it.
        start_over: discard an unfinished run of this output folder instead of resuming it.
        on_message: called with a line when an unfinished run is resumed (which step, how much training it had).
    """
    output_dir = Path(output_dir)
    check_replaceable(output_dir, TRAINING_LOG_FILE)  # before the training, not after it
    vae, earlier = None, None
    if config.start_from is not None:
        from latent_triplane_ns.shipped import resolve_autoencoder_folder

        vae = load_pretrained_vae(resolve_autoencoder_folder(config.start_from))
        earlier = read_training_summary(resolve_autoencoder_folder(config.start_from))
    factor = config.architecture.downsample_factor if vae is None else vae_downsample_factor(vae)
    collections = list(data) if isinstance(data, (list, tuple)) else [data]
    train = load_collections_images(collections, "train", scene_range, factor)
    held_out = load_collections_images(collections, "test", scene_range, factor)
    source = " + ".join(collection_name(c) for c in collections)
    check_crop(config.crop_size, train, source)
    checkpoints = TrainingCheckpoints(work_folder(output_dir), run_identity(config, train, held_out), source)
    state = checkpoints.open(start_over)
    if state is not None and on_message is not None:
        on_message(
            f"autoencoder resumed from step {state['step']} ({state['seconds']:.0f} s of training) of the unfinished "
            f"run in {checkpoints.folder}"
        )
    latest = {"eval_psnr": math.nan}

    def relay(record: Dict[str, float]) -> None:
        evaluated = "eval_psnr" in record
        latest.update({k: v for k, v in record.items() if k == "eval_psnr"})
        if on_progress is not None:
            on_progress({**record, **latest, "evaluated": float(evaluated)})

    vae, result = train_autoencoder(
        config, train, held_out, device, on_progress=relay, vae=vae, resume=state, save_checkpoint=checkpoints.save
    )
    if on_message is not None:
        on_message(
            f"autoencoder trained: measuring its reconstruction ({len(held_out)} held-out views) and latent statistics"
        )
    log = {
        "data": " + ".join(Path(collection_name(c)).name for c in collections),
        "scene_range": list(scene_range) if scene_range is not None else None,
        "num_train_images": int(train.shape[0]),
        "num_eval_images": int(held_out.shape[0]),
        "images_fingerprint": checkpoints.identity["images"]["fingerprint"],
        "eval_psnr": result.eval_psnr,
        "train_psnr": reconstruction_psnr(vae, train[:: max(1, train.shape[0] // 200)]),
        "eval_object_psnr": object_psnr(vae, held_out),
        "steps": result.steps,
        "seconds": result.seconds,
        "resumed": result.resumed,
        "parameters": sum(p.numel() for p in vae.parameters()),
        "settings": settings_json(config),
        "start_from_training": earlier,
        "curve": result.curve,
    }
    # per-channel mean and spread: a thousand training images, evenly spread, fix them as well as all of them do
    stats = latent_statistics(vae, train[:: max(1, train.shape[0] // 1000)])
    save_trained_autoencoder(vae, output_dir, stats, log)
    checkpoints.discard()  # only once the finished folder is in place
    return log
