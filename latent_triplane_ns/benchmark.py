"""Benchmark: `latent-triplane` against the `triplane-rgb` baseline on the same new scenes, in one run on one machine.

The run generates a procedural collection, trains (or loads) the autoencoder and a basis checkpoint on the first
`num_basis_scenes` scenes, then fits the next K scenes, held out from that collection, with three methods, each in
its own process and in nerfstudio's own Trainer: `triplane-rgb`; `latent-triplane` with per-scene planes only (the
paper's latent Tri-Planes); and `latent-triplane` Micro-Macro against the basis. It records held-out PSNR/SSIM
against training time, the time to reach the baseline's quality, peak memory, the effective memory per scene
(per-scene parameters plus shared parameters over the number of scenes), training rays/s and render speed, and
writes them as JSON, a markdown table and PNG plots.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import torch

from latent_triplane_ns.ae_training import AETrainingConfig

METHOD_LABELS: Dict[str, str] = {
    "triplane-rgb": "triplane-rgb (baseline)",
    "latent-micro": "latent-triplane, per-scene planes only",
    "latent-micro-macro": "latent-triplane, Micro-Macro",
}
"""The compared methods, the baseline first: report keys and their labels."""
PAPER = {
    "time_reduction": 0.86,
    "memory_reduction": 0.44,
    "scenes": 1000,
    "psnr_db": 28.0,
    "setting": "ShapeNet cars, 128 px, NVIDIA L4/A100",
}
"""The paper's headline figures (arXiv 2403.11678, abstract), shown beside ours."""

_NEVER = 10**9
"""A step interval nerfstudio's trainer never reaches (its own evaluations and checkpoints are switched off)."""


@dataclass
class FieldSizes:
    """Tri-Plane field sizes shared by every method, so the methods differ only in what the paper compares."""

    plane_resolution: int = 32
    """Side of every plane."""
    micro_features: int = 8
    """F_mic: per-scene features of Micro-Macro; triplane-rgb and per-scene-only planes get F_mic + F_mac."""
    macro_features: int = 16
    """F_mac: features of every basis plane."""
    num_basis: int = 8
    """M: basis plane sets."""
    mlp_hidden_width: int = 64
    """Hidden width of the tiny MLP."""
    num_coarse_samples: int = 24
    """Stratified samples per ray."""
    num_importance_samples: int = 24
    """Importance samples per ray."""

    @property
    def num_features(self) -> int:
        return self.micro_features + self.macro_features


@dataclass
class BenchmarkConfig:
    """Sizes, budgets and outputs of one benchmark run. The defaults are the 'cpu' preset: the whole run, generation
    and the one-off autoencoder and basis included, fits 45 minutes on 2 cores (about 41 estimated with unit costs
    measured on busy cores: 8 + 5 one-off, 10 + 2 x 4 of training, the rest setup, encoding and evaluation); the
    field is latent-triplane-small's."""

    preset: Literal["toy", "cpu", "gpu"] = "cpu"
    """Preset the other defaults come from (read first; every other setting given overrides it)."""
    output_dir: Path = Path("outputs/benchmark")
    """Where the runs, benchmark.json, benchmark.md and the plots are written."""
    data_dir: Optional[Path] = None
    """Procedural collection, generated if missing and reused; output_dir/data when None."""
    autoencoder: Optional[Path] = None
    """Local AutoencoderKL directory; None trains the compact one on the basis scenes (a one-off cost)."""
    basis: Optional[Path] = None
    """Basis checkpoint to fit Micro-Macro against (its autoencoder and sizes are used); None trains one."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Device of every training run."""
    image_size: int = 128
    """Side of the generated images."""
    num_basis_scenes: int = 10
    """Scenes [0, N) of the collection: the autoencoder and the basis are trained on them."""
    num_new_scenes: int = 5
    """K: scenes [N, N + K), never seen by the autoencoder or the basis, fitted jointly by every method."""
    num_train_views: int = 50
    """Training views per scene."""
    num_test_views: int = 10
    """Held-out views per scene."""
    seed: int = 0
    """Seed of the collection and of every run."""
    autoencoder_training: AETrainingConfig = field(default_factory=lambda: AETrainingConfig(max_minutes=8.0))
    """Recipe and budget of the compact AutoencoderKL (when no autoencoder is given)."""
    latent_method: str = "latent-triplane-small"
    """Registered preset of the latent runs (basis and new scenes): learning rates and schedule."""
    rgb_method: str = "triplane-rgb"
    """Registered preset of the baseline: learning rate and schedule; its field gets the same sizes."""
    sizes: FieldSizes = field(default_factory=FieldSizes)
    """Field sizes of every method (a given basis checkpoint overrides the plane, basis and MLP sizes)."""
    latent_rays_per_batch: int = 1024
    """Latent rays per training step of the latent runs."""
    rgb_rays_per_batch: int = 1024
    """RGB rays per training step of the baseline (on 2 cores 1024 beat 4096 at equal training time)."""
    basis_minutes: float = 5.0
    """Training-time budget of the basis run on the basis scenes."""
    rgb_minutes: float = 10.0
    """Training-time budget of triplane-rgb on the K new scenes."""
    latent_minutes: float = 4.0
    """Training-time budget of each latent-triplane run on the K new scenes."""
    micro_macro_shared: Literal["frozen", "train"] = "frozen"
    """Basis and MLP during the Micro-Macro fit: frozen (the default of a loaded basis) or fine-tuned (the paper)."""
    curve_points: int = 6
    """Held-out evaluations per run, log-spaced in training time from first_eval_seconds to the budget."""
    first_eval_seconds: float = 10.0
    """Training time of the first evaluation after the one at zero."""
    eval_views_per_scene: int = 1
    """Held-out views per scene in the curve's evaluations (the final figures use every held-out view)."""
    render_views: int = 3
    """Full-resolution renders timed per method, after one warm-up render."""
    target_margin_db: float = 0.5
    """Quality target: the baseline's final curve PSNR minus this."""
    scene_counts: Tuple[int, ...] = (1, 10, 100, 1000, 10000)
    """Collection sizes N at which the effective memory per scene is reported."""
    time_target: float = 0.10
    """Target: per-scene time to the quality target, as a fraction of the baseline's."""
    memory_target: float = 0.50
    """Target: effective memory per scene at memory_target_scenes, as a fraction of the baseline's."""
    memory_target_scenes: int = 1000
    """N at which the memory target is judged."""

    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.output_dir / "data"


def _toy() -> BenchmarkConfig:
    return BenchmarkConfig(
        preset="toy",
        output_dir=Path("outputs/benchmark-toy"),
        image_size=32,
        num_basis_scenes=2,
        num_new_scenes=2,
        num_train_views=6,
        num_test_views=2,
        autoencoder_training=AETrainingConfig(
            block_out_channels=(8, 8, 8, 8), batch_size=4, max_minutes=0.03, eval_every_seconds=60.0
        ),
        sizes=FieldSizes(
            plane_resolution=16,
            micro_features=4,
            macro_features=4,
            num_basis=2,
            mlp_hidden_width=16,
            num_coarse_samples=8,
            num_importance_samples=8,
        ),
        latent_rays_per_batch=64,
        rgb_rays_per_batch=256,
        basis_minutes=0.03,
        rgb_minutes=0.03,
        latent_minutes=0.03,
        curve_points=2,
        first_eval_seconds=0.5,
        eval_views_per_scene=1,
        render_views=1,
    )


def _cpu() -> BenchmarkConfig:
    return BenchmarkConfig(preset="cpu", output_dir=Path("outputs/benchmark"))


def _gpu() -> BenchmarkConfig:
    # The paper's sizes: 64x64 planes, F_mic=10 + F_mac=22, M=50, 48+48 samples, batches of 32 latent views,
    # the autoencoder and basis learned on 500 scenes and 40 new scenes (its exploitation set).
    return BenchmarkConfig(
        preset="gpu",
        output_dir=Path("outputs/benchmark-gpu"),
        device="cuda",
        num_basis_scenes=500,
        num_new_scenes=40,
        autoencoder_training=AETrainingConfig(batch_size=32, max_minutes=60.0),
        latent_method="latent-triplane",
        sizes=FieldSizes(
            plane_resolution=64,
            micro_features=10,
            macro_features=22,
            num_basis=50,
            mlp_hidden_width=64,
            num_coarse_samples=48,
            num_importance_samples=48,
        ),
        latent_rays_per_batch=8192,
        rgb_rays_per_batch=8192,
        basis_minutes=60.0,
        rgb_minutes=60.0,
        latent_minutes=30.0,
        curve_points=12,
        first_eval_seconds=10.0,
        eval_views_per_scene=1,
        render_views=10,
    )


BENCHMARK_PRESETS: Dict[str, Callable[[], BenchmarkConfig]] = {"toy": _toy, "cpu": _cpu, "gpu": _gpu}
"""Named starting points: 'toy' (tests, seconds), 'cpu' (2 cores, under 45 minutes), 'gpu' (the paper's sizes)."""


# ---------------------------------------------------------------------------------------------------------------
# Accounting and curve analysis (pure functions)
# ---------------------------------------------------------------------------------------------------------------


def count_parameters(model: Any) -> Dict[str, Any]:
    """Per-scene and shared parameters of a Tri-Plane model, as counts and bytes.

    Per scene: one scene's micro planes and its row of basis weights. Shared by every scene of a collection: the
    basis planes, the MLP and the autoencoder (encoder and decoder). Buffers (normalisation constants) are not
    parameters and are not counted.

    Args:
        model: anything with `field.triplanes` (`micro`, `weights`, `basis`, `num_scenes`), `field.mlp` and
            `autoencoder` modules, e.g. a `LatentTriplaneModel`.
    """
    planes = model.field.triplanes
    num_scenes = int(planes.num_scenes)

    def nbytes(tensors: Sequence[torch.Tensor]) -> int:
        return int(sum(t.numel() * t.element_size() for t in tensors))

    per_scene = {
        "micro_planes": planes.micro.numel() // num_scenes,
        "basis_weights": planes.weights.numel() // num_scenes,
    }
    mlp, autoencoder = list(model.field.mlp.parameters()), list(model.autoencoder.parameters())
    shared = {
        "basis": planes.basis.numel(),
        "mlp": sum(p.numel() for p in mlp),
        "autoencoder": sum(p.numel() for p in autoencoder),
    }
    return {
        "per_scene": per_scene,
        "shared": shared,
        "per_scene_bytes": nbytes([planes.micro, planes.weights]) // num_scenes,
        "shared_bytes": nbytes([planes.basis, *mlp, *autoencoder]),
    }


def effective_memory_per_scene(counts: Dict[str, Any], num_scenes: int) -> float:
    """Bytes one scene costs in a collection of `num_scenes`: its own parameters plus its share of the shared ones."""
    return counts["per_scene_bytes"] + counts["shared_bytes"] / num_scenes


def paper_size_accounting() -> Dict[str, Any]:
    """The accounting at the paper's sizes (SD-VAE, 64x64 planes, F_mic=10 + F_mac=22, M=50, MLP width 64),
    built on the meta device (no memory, no weights): the check that this accounting gives the paper's 56%."""
    from types import SimpleNamespace

    from latent_triplane_ns.autoencoder import build_compact_vae
    from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField

    with torch.device("meta"):
        sd_vae = build_compact_vae((128, 256, 512, 512), latent_channels=4, layers_per_block=2)
        ae = torch.nn.ModuleDict({"vae": sd_vae})
        micro_macro = SimpleNamespace(
            field=TriplaneField(MicroMacroTriplanes(1, 64, 10, 22, 50), 4, 64, "torch"), autoencoder=ae
        )
        rgb = SimpleNamespace(
            field=TriplaneField(MicroMacroTriplanes(1, 64, 32, 0, 0), 3, 64, "torch"), autoencoder=torch.nn.Module()
        )
    mm_counts, rgb_counts = count_parameters(micro_macro), count_parameters(rgb)
    n = PAPER["scenes"]
    return {
        "micro_macro": mm_counts,
        "triplane_rgb": rgb_counts,
        "ratio_at_1000": effective_memory_per_scene(mm_counts, n) / effective_memory_per_scene(rgb_counts, n),
    }


def time_to_target(curve: Sequence[Dict[str, float]], target: float, key: str = "psnr") -> Optional[float]:
    """Training seconds at which a curve first reaches `target`, linearly interpolated between the two evaluations
    around the crossing; None when it never does."""
    previous = None
    for point in curve:
        if point[key] >= target:
            if previous is None or point["train_seconds"] <= previous["train_seconds"]:
                return float(point["train_seconds"])
            gain = point[key] - previous[key]
            fraction = (target - previous[key]) / gain if gain > 0 else 1.0
            t0, t1 = previous["train_seconds"], point["train_seconds"]
            return float(t0 + fraction * (t1 - t0))
        previous = point
    return None


def eval_schedule(budget_seconds: float, first_seconds: float, points: int) -> List[float]:
    """Training times of the curve's evaluations: zero, then `points` log-spaced times ending at the budget."""
    if points < 1 or budget_seconds <= 0:
        return [0.0, max(budget_seconds, 0.0)]
    first = min(first_seconds, budget_seconds)
    if points == 1 or first >= budget_seconds:
        return [0.0, budget_seconds]
    ratio = budget_seconds / first
    return [0.0] + [first * ratio ** (k / (points - 1)) for k in range(points)]


# ---------------------------------------------------------------------------------------------------------------
# One training run (in its own process for the compared methods)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TrainingJob:
    """What one training run does; written as JSON for the process that runs it."""

    name: str
    """Method key (or 'basis')."""
    config_file: str
    """nerfstudio config.yml of the run."""
    budget_seconds: float
    """Training time after which the run stops (evaluations excluded)."""
    eval_times: List[float]
    """Training times of the curve's evaluations."""
    eval_views_per_scene: int
    """Held-out views per scene in the curve's evaluations."""
    render_views: int
    """Full-resolution renders timed at the end."""
    final_eval: bool
    """Evaluate every held-out view at the end."""
    progress_file: str
    """JSON lines of progress events, read by the benchmark's progress bars."""
    result_file: str
    """Where the run's figures are written."""
    seed: int = 0
    """Seed of torch, numpy and random."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_bytes(key: str) -> Optional[int]:
    """A memory figure of /proc/self/status (Linux), e.g. VmRSS (now) or VmHWM (peak), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> int:
    """Resets the process's peak resident set where Linux allows it, so the peak measured later is the training's
    (the imports of torch and nerfstudio peak above what a small run ever needs); returns the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    now = _proc_status_bytes("VmRSS")
    return now if now is not None else peak_rss()


def peak_rss() -> int:
    """Peak resident set of this process, in bytes, since the last `reset_peak_rss` where Linux allows it."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class HeldOutEvaluator:
    """PSNR and SSIM of decoded full-resolution renders against held-out images, per scene and averaged.

    Args:
        model: the Tri-Plane model.
        datamanager: its `LatentDataManager`.
        indices: held-out image indices to evaluate.
    """

    def __init__(self, model, datamanager, indices: Sequence[int]):
        self.model, self.datamanager = model, datamanager
        dataset = datamanager.eval_dataset
        scene_index = dataset.cameras.metadata["scene_index"].view(-1)
        self.items = [
            (
                dataset.cameras[i : i + 1].to(datamanager.device),
                datamanager.load_image(dataset, i).to(model.device),
                int(scene_index[i]),
            )
            for i in indices
        ]

    @torch.no_grad()
    def __call__(self) -> Dict[str, Any]:
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        model = self.model
        was_training = model.training
        model.eval()
        per_scene: Dict[int, List[Tuple[float, float]]] = defaultdict(list)
        for camera, image, scene in self.items:
            rgb = model.get_outputs_for_camera(camera)["rgb"]
            h, w = min(rgb.shape[0], image.shape[0]), min(rgb.shape[1], image.shape[1])
            pred, gt = rgb[:h, :w].permute(2, 0, 1)[None], image[:h, :w].permute(2, 0, 1)[None]
            psnr = float(peak_signal_noise_ratio(pred, gt, data_range=1.0))
            ssim = float(structural_similarity_index_measure(pred, gt, data_range=1.0))
            per_scene[scene].append((psnr, ssim))
        model.train(was_training)
        return _average(per_scene, model.scene_names)

    @torch.no_grad()
    def autoencoder_psnr(self) -> Optional[float]:
        """Mean PSNR of D(E(x)) on the evaluated views: the ceiling of a latent method (None for RGB)."""
        from torchmetrics.functional.image import peak_signal_noise_ratio

        ae = self.model.autoencoder
        if ae.vae is None:
            return None
        per_scene: Dict[int, List[Tuple[float, float]]] = defaultdict(list)
        for _, image, scene in self.items:
            f = ae.downsample_factor
            h, w = image.shape[0] - image.shape[0] % f, image.shape[1] - image.shape[1] % f
            x = image[:h, :w].permute(2, 0, 1)[None]
            recon = ae.decode(ae.encode(x))
            per_scene[scene].append((float(peak_signal_noise_ratio(recon, x, data_range=1.0)), 0.0))
        return _average(per_scene, self.model.scene_names)["psnr"]


def _average(per_scene: Dict[int, List[Tuple[float, float]]], names: Sequence[str]) -> Dict[str, Any]:
    """Per-scene means, and their mean (every scene weighs the same)."""
    scenes = {
        names[s]: {"psnr": sum(v[0] for v in values) / len(values), "ssim": sum(v[1] for v in values) / len(values)}
        for s, values in sorted(per_scene.items())
    }
    return {
        "psnr": sum(v["psnr"] for v in scenes.values()) / len(scenes),
        "ssim": sum(v["ssim"] for v in scenes.values()) / len(scenes),
        "per_scene": scenes,
    }


def eval_indices(datamanager, views_per_scene: Optional[int]) -> List[int]:
    """The first `views_per_scene` held-out views of every scene (all of them when None)."""
    scene_index = datamanager.eval_dataset.cameras.metadata["scene_index"].view(-1).tolist()
    taken: Dict[int, int] = defaultdict(int)
    indices = []
    for i, scene in enumerate(scene_index):
        if views_per_scene is None or taken[scene] < views_per_scene:
            indices.append(i)
            taken[scene] += 1
    return indices


@torch.no_grad()
def time_rendering(model, cameras: Sequence[Any]) -> Dict[str, float]:
    """Seconds per full-resolution frame of `get_outputs_for_camera`, split into the latent render (everything
    but the decoder) and the autoencoder's decode, after one warm-up render."""
    ae = model.autoencoder
    device = model.device
    decode = ae.decode
    decode_seconds = [0.0]

    def timed_decode(latents):
        _sync(device)
        start = time.perf_counter()
        out = decode(latents)
        _sync(device)
        decode_seconds[0] += time.perf_counter() - start
        return out

    was_training = model.training
    model.eval()
    ae.decode = timed_decode
    try:
        model.get_outputs_for_camera(cameras[0])
        decode_seconds[0] = 0.0
        _sync(device)
        start = time.perf_counter()
        for camera in cameras:
            model.get_outputs_for_camera(camera)
        _sync(device)
        total = time.perf_counter() - start
    finally:
        del ae.decode
        model.train(was_training)
    frames = len(cameras)
    total_s, decode_s = total / frames, decode_seconds[0] / frames
    return {
        "seconds_per_frame": total_s,
        "latent_render_seconds": total_s - decode_s,
        "decode_seconds": decode_s,
        "fps": 1.0 / total_s,
        "latent_render_fps": 1.0 / max(total_s - decode_s, 1e-9),
        "decode_fps": 1.0 / max(decode_s, 1e-9),
    }


class BudgetedTraining:
    """Training callback: keeps the training clock (evaluations excluded), evaluates on schedule, fits the
    learning-rate decay to the steps the time budget allows, and stops the trainer at the budget.

    Args:
        trainer: nerfstudio's Trainer, set up.
        job: the run's settings.
        evaluator: evaluates the curve's views.
        report: called with each progress event.
    """

    def __init__(self, trainer, job: TrainingJob, evaluator: HeldOutEvaluator, report: Callable[[Dict], None]):
        self.trainer, self.job, self.evaluator, self.report = trainer, job, evaluator, report
        self.train_seconds, self.steps = 0.0, 0
        self.curve: List[Dict[str, float]] = []
        self.pending = [t for t in job.eval_times if t > 0]
        self.mark = time.perf_counter()
        self.last_report = 0.0
        self.device = torch.device(trainer.pipeline.model.device)

    def evaluate(self) -> None:
        result = self.evaluator()
        point = {
            "train_seconds": self.train_seconds,
            "step": self.steps,
            "psnr": result["psnr"],
            "ssim": result["ssim"],
        }
        self.curve.append(point)
        self.report({"event": "eval", **point})

    def start(self) -> None:
        self.set_horizon(_NEVER)
        self.evaluate()
        _sync(self.device)
        self.mark = time.perf_counter()

    def set_horizon(self, steps: int) -> None:
        """Steps over which the learning rates decay (nerfstudio's exponential decay reads it at every step)."""
        for group in self.trainer.config.optimizers.values():
            if group.get("scheduler") is not None and hasattr(group["scheduler"], "max_steps"):
                group["scheduler"].max_steps = max(int(steps), 1)

    def __call__(self, step: int) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.train_seconds += now - self.mark
        self.steps = step + 1
        budget = self.job.budget_seconds
        if self.steps == 10 or (self.pending and self.train_seconds >= self.pending[0]):
            # the decay ends where the budget is expected to end at the speed seen so far
            self.set_horizon(self.steps * budget / max(self.train_seconds, 1e-9))
        done = self.train_seconds >= budget
        if done or (self.pending and self.train_seconds >= self.pending[0]):
            while self.pending and self.pending[0] <= self.train_seconds:
                self.pending.pop(0)
            self.evaluate()
        elif now - self.last_report > 0.5:
            self.last_report = now
            self.report({"event": "step", "train_seconds": self.train_seconds, "step": self.steps})
        if done:
            self.set_horizon(self.steps)
            self.trainer.stop_training = True
        _sync(self.device)
        self.mark = time.perf_counter()


def run_job(job: TrainingJob, on_event: Optional[Callable[[Dict], None]] = None) -> Dict[str, Any]:
    """Trains one run in nerfstudio's Trainer under a training-time budget and returns its figures.

    Args:
        job: the run's settings.
        on_event: also called with every progress event (they are always appended to `job.progress_file`).
    """
    import numpy as np
    import yaml
    from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

    random.seed(job.seed)
    np.random.seed(job.seed)
    torch.manual_seed(job.seed)
    progress = open(job.progress_file, "a", buffering=1)  # noqa: SIM115

    def report(event: Dict) -> None:
        event = {"name": job.name, **event}
        progress.write(json.dumps(event) + "\n")
        if on_event is not None:
            on_event(event)

    config = yaml.load(Path(job.config_file).read_text(), Loader=yaml.Loader)  # imports nerfstudio and the plugin
    rss_before_setup = reset_peak_rss()
    cuda = config.machine.device_type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    report({"event": "setup"})
    setup_start = time.perf_counter()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline = trainer.pipeline
    model, datamanager = pipeline.model, pipeline.datamanager
    device = torch.device(model.device)
    # Data preparation (reading the images; for latent methods, encoding each of them once) is timed on its own.
    _sync(device)
    prep_start = time.perf_counter()
    datamanager.cached_train  # noqa: B018
    _sync(device)
    prep_seconds = time.perf_counter() - prep_start
    setup_seconds = time.perf_counter() - setup_start
    curve_eval = HeldOutEvaluator(model, datamanager, eval_indices(datamanager, job.eval_views_per_scene))
    ae_psnr = curve_eval.autoencoder_psnr()
    clock = BudgetedTraining(trainer, job, curve_eval, report)
    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], clock))
    report({"event": "train"})
    clock.start()
    trainer.train()
    peak_rss_bytes = peak_rss()
    peak_cuda = int(torch.cuda.max_memory_allocated()) if cuda else None
    config.max_num_iterations = clock.steps
    _write_config(config)
    result: Dict[str, Any] = {
        "name": job.name,
        "method": config.method_name,
        "base_dir": str(trainer.base_dir),
        "num_scenes": int(model.field.triplanes.num_scenes),
        "scene_names": list(model.scene_names),
        "steps": clock.steps,
        "train_seconds": clock.train_seconds,
        "rays_per_batch": int(datamanager.get_train_rays_per_batch()),
        "rays_per_second": clock.steps * datamanager.get_train_rays_per_batch() / max(clock.train_seconds, 1e-9),
        "setup_seconds": setup_seconds,
        "data_prep_seconds": prep_seconds,
        "curve": clock.curve,
        "curve_autoencoder_psnr": ae_psnr,
        "parameters": count_parameters(model),
        "trainable_parameter_groups": sorted(trainer.optimizers.optimizers),
        "peak_rss_bytes": peak_rss_bytes,
        "rss_before_setup_bytes": rss_before_setup,
        "peak_cuda_bytes": peak_cuda,
    }
    if job.final_eval:
        report({"event": "final_eval"})
        full = HeldOutEvaluator(model, datamanager, eval_indices(datamanager, None))
        final = full()
        result["final"] = {**final, "autoencoder_psnr": full.autoencoder_psnr(), "num_views": len(full.items)}
    if job.render_views > 0:
        report({"event": "render"})
        cameras = [item[0] for item in curve_eval.items[: job.render_views]]
        result["render"] = time_rendering(model, cameras)
    Path(job.result_file).write_text(json.dumps(result, indent=2))
    report({"event": "done"})
    progress.close()
    return result


def _run_job_process(job: TrainingJob, log_file: Path, on_event: Callable[[Dict], None]) -> Dict[str, Any]:
    """Runs a job in a fresh Python process (so its peak memory is its own) and relays its progress events."""
    job_file = Path(job.result_file).with_suffix(".job.json")
    job_file.write_text(json.dumps(asdict(job), indent=2))
    Path(job.progress_file).write_text("")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    with open(log_file, "w") as log, open(job.progress_file) as events:
        process = subprocess.Popen(
            [sys.executable, "-m", "latent_triplane_ns.benchmark", str(job_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        buffer = ""
        while True:
            finished = process.poll() is not None
            buffer += events.read()
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.strip():
                    on_event(json.loads(line))
            if finished:
                break
            time.sleep(0.2)
    if process.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{job.name}: training process failed (exit {process.returncode}); log {log_file}:\n{tail}")
    return json.loads(Path(job.result_file).read_text())


# ---------------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------------


def method_trainer_config(
    method: str,
    data: Path,
    scenes: Sequence[str],
    output_dir: Path,
    experiment: str,
    device: str,
    rays_per_batch: int,
    sizes: FieldSizes,
    **model_settings: Any,
):
    """A registered method's TrainerConfig for a benchmark run: the given scenes, sizes and ray batch, nerfstudio's
    own evaluations and intermediate checkpoints off (the benchmark evaluates on its own clock)."""
    import copy

    from nerfstudio.configs.method_configs import all_methods

    from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig

    if method not in all_methods:
        raise ValueError(f"{method!r} is not a registered nerfstudio method (is latent-triplane-ns installed?)")
    config = copy.deepcopy(all_methods[method])
    config.output_dir = output_dir
    config.experiment_name = experiment
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.viewer.quit_on_train_completion = True
    config.machine.device_type = device
    config.max_num_iterations = _NEVER
    config.steps_per_save = _NEVER
    config.steps_per_eval_batch = _NEVER
    config.steps_per_eval_image = _NEVER
    config.steps_per_eval_all_images = _NEVER
    config.logging.local_writer.enable = False
    datamanager = config.pipeline.datamanager
    datamanager.dataparser = SceneCollectionDataParserConfig(data=data, scenes=tuple(scenes))
    datamanager.data = None
    datamanager.train_num_rays_per_batch = rays_per_batch
    datamanager.eval_num_rays_per_batch = rays_per_batch
    # Every run encodes its own images, so the encoding time is measured, not read from another run's cache.
    datamanager.cache_latents_on_disk = False
    model = config.pipeline.model
    for key in ("plane_resolution", "micro_features", "macro_features", "num_basis", "mlp_hidden_width"):
        setattr(model, key, getattr(sizes, key))
    model.num_coarse_samples = sizes.num_coarse_samples
    model.num_importance_samples = sizes.num_importance_samples
    for key, value in model_settings.items():
        setattr(model, key, value)
    return config


def _write_config(config) -> Path:
    """Writes a TrainerConfig's config.yml where nerfstudio's tools (`ns-eval`, `ns-render`, ...) look for it."""
    import yaml

    path = config.get_base_dir() / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(config), "utf8")
    return path


def machine_info() -> Dict[str, Any]:
    """CPU model, cores, memory, GPU, and the versions of the software that produced the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    versions = {"python": platform.python_version()}
    for package in ("torch", "nerfstudio", "diffusers", "latent-triplane-ns"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_bytes": ram,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _settings_json(config: BenchmarkConfig) -> Dict[str, Any]:
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(asdict(config))


# Rough unit costs behind the wall-time estimate, measured on 2 busy Xeon cores (CPU) and guessed for one GPU.
_UNIT_SECONDS = {
    "cpu": {"scene": 1.6, "encode": 0.1, "decode": 0.4, "sample": 4e-6, "process": 25.0},
    "cuda": {"scene": 1.6, "encode": 0.002, "decode": 0.005, "sample": 2e-8, "process": 30.0},
}
"""Seconds per generated 128 px scene of 60 views (one core), per encoded and per decoded 128 px image, per ray
sample of a rendered view, and per training process start (imports, setup)."""


def planned_seconds(config: BenchmarkConfig) -> Dict[str, float]:
    """Expected wall time of every stage: budgets plus setup, encoding, evaluation and rendering (estimates)."""
    unit = _UNIT_SECONDS[config.device]
    pixels = config.image_size**2
    area = pixels / 128**2
    samples = config.sizes.num_coarse_samples + config.sizes.num_importance_samples
    k, n = config.num_new_scenes, config.num_basis_scenes
    scenes = k + (0 if config.basis else n)
    views = config.num_train_views + config.num_test_views
    plan = {"generate": 2.0 + unit["scene"] * scenes * area * views / 60 / max(1, os.cpu_count() or 1)}
    latent_view = unit["sample"] * samples * pixels / 64 + unit["decode"] * area
    if config.autoencoder is None and config.basis is None:
        statistics = unit["encode"] * area * n * config.num_train_views / 4
        plan["autoencoder"] = config.autoencoder_training.max_minutes * 60 + 10 + statistics
    if config.basis is None:
        encode = unit["encode"] * area * n * config.num_train_views
        plan["basis"] = config.basis_minutes * 60 + unit["process"] + encode + 2 * n * latent_view
    evaluated = (config.curve_points + 1) * k * config.eval_views_per_scene + k * config.num_test_views
    evaluated += config.render_views + 1
    plan["triplane-rgb"] = config.rgb_minutes * 60 + unit["process"] + evaluated * unit["sample"] * samples * pixels
    for name in ("latent-micro", "latent-micro-macro"):
        encode = unit["encode"] * area * k * config.num_train_views
        plan[name] = config.latent_minutes * 60 + unit["process"] + encode + evaluated * latent_view
    return plan


class _Progress:
    """Rich progress bars: the whole run (ETA from the plan) and the current stage."""

    def __init__(self, plan: Dict[str, float], enabled: bool = True):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.plan = plan
        self.done_seconds = 0.0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            # pinned to the terminal: output of an in-process training run is redirected to its log
            console=Console(file=sys.stdout),
            disable=not enabled,
        )
        self.total = self.progress.add_task("benchmark", total=sum(plan.values()), status="")
        self.stage = None
        self.stage_name = ""

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def begin(self, name: str, description: str, total: float) -> None:
        self.stage_name = name
        self.stage = self.progress.add_task(description, total=max(total, 1e-6), status="")

    def update(self, completed: float, status: str = "") -> None:
        task = self.progress.tasks[self.stage]
        completed = min(completed, task.total)
        self.progress.update(self.stage, completed=completed, status=status)
        self.progress.update(
            self.total, completed=self.done_seconds + self.plan.get(self.stage_name, 0) * completed / task.total
        )

    def end(self) -> None:
        task = self.progress.tasks[self.stage]
        self.progress.update(self.stage, completed=task.total)
        self.done_seconds += self.plan.get(self.stage_name, 0)
        self.progress.update(self.total, completed=self.done_seconds)


def _job_progress(progress: _Progress) -> Callable[[Dict], None]:
    """Relays a training process's events to the stage's progress bar."""
    state = {"psnr": float("nan"), "phase": "setting up", "step": "-"}

    def on_event(event: Dict) -> None:
        if event["event"] == "eval":
            state["psnr"] = event["psnr"]
        if event["event"] in ("setup", "train", "final_eval", "render"):
            state["phase"] = {
                "setup": "setting up",
                "train": "training",
                "final_eval": "final evaluation",
                "render": "timing renders",
            }[event["event"]]
        seconds = event.get("train_seconds")
        state["step"] = event.get("step", state["step"])
        status = f"{state['phase']}  step {state['step']}  held-out PSNR {state['psnr']:.2f} dB"
        if seconds is not None:
            progress.update(seconds, status)
        else:
            progress.update(progress.progress.tasks[progress.stage].completed, status)

    return on_event


def run_benchmark(config: BenchmarkConfig, show_progress: bool = True) -> Dict[str, Any]:
    """Runs the whole benchmark and writes benchmark.json, benchmark.md and the plots into config.output_dir."""
    from rich.console import Console

    from latent_triplane_ns import basis as basis_io
    from latent_triplane_ns.ae_training import latent_statistics, save_trained_autoencoder, train_autoencoder
    from latent_triplane_ns.autoencoder import AutoencoderConfig
    from latent_triplane_ns.procedural import generate_collection
    from latent_triplane_ns.scripts.train_ae import load_collection_images

    console = Console()
    if config.basis is not None and config.autoencoder is not None:
        raise ValueError("give either --basis (which brings its own autoencoder) or --autoencoder, not both")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
    out = Path(config.output_dir)
    runs_dir, logs_dir = out / "runs", out / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    data = config.resolved_data_dir()
    sizes = FieldSizes(**asdict(config.sizes))
    plan = planned_seconds(config)
    console.print(
        f"[bold]ltn-benchmark[/bold] preset {config.preset}: K={config.num_new_scenes} new scenes at "
        f"{config.image_size} px on {config.device}; expected wall time about {sum(plan.values()) / 60:.0f} min "
        f"({', '.join(f'{k} {v / 60:.1f}' for k, v in plan.items())} min)"
    )
    report: Dict[str, Any] = {
        "machine": machine_info(),
        "settings": _settings_json(config),
        "plan_seconds": plan,
        "one_off": {},
        "methods": {},
    }
    wall_start = time.perf_counter()
    with _Progress(plan, enabled=show_progress) as progress:
        # 1. Data: the basis collection [0, N) and the new scenes [N, N + K).
        progress.begin("generate", "generating scenes", 1.0)
        first_new = config.num_basis_scenes
        start = time.perf_counter()
        gen_args = dict(
            seed=config.seed,
            image_size=config.image_size,
            num_train_views=config.num_train_views,
            num_test_views=config.num_test_views,
            show_progress=False,
        )
        if config.basis is None:
            basis_names = [
                d.name for d in generate_collection(data, num_scenes=config.num_basis_scenes, **gen_args).scene_dirs
            ]
        new_names = [
            d.name
            for d in generate_collection(
                data, num_scenes=config.num_new_scenes, first_scene=first_new, **gen_args
            ).scene_dirs
        ]
        report["one_off"]["generate_seconds"] = time.perf_counter() - start
        progress.end()

        # 2. The autoencoder (one-off, shared by the collection).
        if config.basis is not None:
            basis_dir = Path(config.basis)
            checkpoint = basis_io.read_basis_checkpoint(basis_dir)
            seen = set(checkpoint.settings.get("collection", {}).get("scene_names", []))
            if seen & set(new_names):
                raise ValueError(
                    f"{basis_dir} was trained on {sorted(seen & set(new_names))}, which the benchmark fits as new "
                    "scenes; raise --num-basis-scenes past the basis's collection"
                )
            s = checkpoint.settings
            sizes.plane_resolution, sizes.macro_features = s["plane_resolution"], s["macro_features"]
            sizes.num_basis, sizes.mlp_hidden_width = s["num_basis"], s["mlp_hidden_width"]
            sizes.micro_features = s["num_features"] - s["macro_features"]
            report["one_off"]["basis"] = {"given": str(basis_dir)}
        else:
            if config.autoencoder is not None:
                ae_config = AutoencoderConfig(source="pretrained", pretrained_path=Path(config.autoencoder))
                report["one_off"]["autoencoder"] = {"given": str(config.autoencoder)}
            else:
                ae_dir = out / "autoencoder"
                training = config.autoencoder_training
                progress.begin("autoencoder", "training the autoencoder (one-off)", training.max_minutes * 60)
                train_images = load_collection_images(data, "train", (0, config.num_basis_scenes))
                held_out = load_collection_images(data, "test", (0, config.num_basis_scenes))
                last = {"eval_psnr": float("nan")}

                def on_ae_progress(record):
                    last.update({k: v for k, v in record.items() if k == "eval_psnr"})
                    progress.update(record["seconds"], f"step {record['step']}  held-out {last['eval_psnr']:.2f} dB")

                vae, ae_result = train_autoencoder(
                    training, train_images, held_out, config.device, on_progress=on_ae_progress
                )
                # the normalisation's statistics from every 4th image: plenty for 4 means and 4 deviations
                stats = latent_statistics(vae, train_images[::4])
                log = {
                    "eval_psnr": ae_result.eval_psnr,
                    "steps": ae_result.steps,
                    "seconds": ae_result.seconds,
                    "parameters": sum(p.numel() for p in vae.parameters()),
                    "curve": ae_result.curve,
                }
                save_trained_autoencoder(vae.cpu(), ae_dir, stats, log)
                del vae
                report["one_off"]["autoencoder"] = {
                    "seconds": ae_result.seconds,
                    "steps": ae_result.steps,
                    "held_out_psnr": ae_result.eval_psnr,
                    "parameters": log["parameters"],
                    "num_train_images": int(train_images.shape[0]),
                }
                ae_config = AutoencoderConfig(source="pretrained", pretrained_path=ae_dir)
                progress.end()

            # 3. The basis (one-off): latent-triplane with basis, MLP and scenes trained jointly on [0, N).
            budget = config.basis_minutes * 60
            progress.begin("basis", "training the basis (one-off)", budget)
            basis_config = method_trainer_config(
                config.latent_method,
                data,
                basis_names,
                runs_dir,
                "basis",
                config.device,
                config.latent_rays_per_batch,
                sizes,
                autoencoder=ae_config,
                basis_checkpoint=None,
                shared_training="auto",
            )
            _write_config(basis_config)
            job = TrainingJob(
                name="basis",
                config_file=str(basis_config.get_base_dir() / "config.yml"),
                budget_seconds=budget,
                eval_times=[0.0, budget],
                eval_views_per_scene=1,
                render_views=0,
                final_eval=False,
                progress_file=str(logs_dir / "basis.progress.jsonl"),
                result_file=str(logs_dir / "basis.json"),
                seed=config.seed,
            )
            # A one-off cost, not a compared method: it runs in this process (its output goes to the log).
            with open(logs_dir / "basis.log", "w") as log, redirect_stdout(log), redirect_stderr(log):
                result = run_job(job, on_event=_job_progress(progress))
            if config.device == "cuda":
                torch.cuda.empty_cache()
            basis_dir = Path(result["base_dir"]) / "basis"
            report["one_off"]["basis"] = {
                "seconds": result["train_seconds"],
                "steps": result["steps"],
                "num_scenes": result["num_scenes"],
                "held_out_psnr": result["curve"][-1]["psnr"],
                "rays_per_second": result["rays_per_second"],
                "path": str(basis_dir),
            }
            progress.end()
        checkpoint = basis_io.read_basis_checkpoint(basis_dir)
        s = checkpoint.settings
        latent_ae = AutoencoderConfig(
            source="pretrained",
            pretrained_path=basis_dir / basis_io.AUTOENCODER_DIR,
            encode_mode=s["encode_mode"],
            normalization=s["normalization"],
            tanh_scale=tuple(s["tanh_scale"]),
            tanh_shift=tuple(s["tanh_shift"]),
            background_latent=tuple(s["background_latent"]),
        )

        # 4. The compared methods on the K new scenes, each in its own process.
        per_scene_features = sizes.num_features
        runs = {
            "triplane-rgb": (
                config.rgb_method,
                config.rgb_rays_per_batch,
                config.rgb_minutes,
                dict(
                    micro_features=per_scene_features,
                    macro_features=0,
                    num_basis=0,
                    autoencoder=AutoencoderConfig(source="identity"),
                    basis_checkpoint=None,
                ),
            ),
            "latent-micro": (
                config.latent_method,
                config.latent_rays_per_batch,
                config.latent_minutes,
                dict(
                    micro_features=per_scene_features,
                    macro_features=0,
                    num_basis=0,
                    autoencoder=latent_ae,
                    basis_checkpoint=None,
                    shared_training="auto",
                ),
            ),
            "latent-micro-macro": (
                config.latent_method,
                config.latent_rays_per_batch,
                config.latent_minutes,
                dict(basis_checkpoint=basis_dir.resolve(), shared_training=config.micro_macro_shared),
            ),
        }
        for name, (method, rays, minutes, settings) in runs.items():
            budget = minutes * 60
            progress.begin(name, f"fitting {config.num_new_scenes} new scenes: {name}", budget)
            trainer_config = method_trainer_config(
                method, data, new_names, runs_dir, name, config.device, rays, sizes, **settings
            )
            _write_config(trainer_config)
            job = TrainingJob(
                name=name,
                config_file=str(trainer_config.get_base_dir() / "config.yml"),
                budget_seconds=budget,
                eval_times=eval_schedule(budget, config.first_eval_seconds, config.curve_points),
                eval_views_per_scene=config.eval_views_per_scene,
                render_views=config.render_views,
                final_eval=True,
                progress_file=str(logs_dir / f"{name}.progress.jsonl"),
                result_file=str(logs_dir / f"{name}.json"),
                seed=config.seed,
            )
            report["methods"][name] = _run_job_process(job, logs_dir / f"{name}.log", _job_progress(progress))
            progress.end()
    report["wall_seconds"] = time.perf_counter() - wall_start
    report["sizes_used"] = asdict(sizes)
    summarize(report, config)
    write_outputs(report, out)
    console.print(markdown_report(report), markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"Wrote {out / 'benchmark.json'}, {out / 'benchmark.md'}, {out / 'psnr_vs_time.png'}, "
        f"{out / 'memory_per_scene.png'} in {report['wall_seconds'] / 60:.1f} min"
    )
    return report


# ---------------------------------------------------------------------------------------------------------------
# Figures, verdicts and outputs
# ---------------------------------------------------------------------------------------------------------------


def summarize(report: Dict[str, Any], config: BenchmarkConfig) -> None:
    """Adds the derived figures to the report: target, time to target, ratios, effective memory, verdicts."""
    methods = report["methods"]
    k = config.num_new_scenes
    baseline = methods["triplane-rgb"]
    target = baseline["curve"][-1]["psnr"] - config.target_margin_db
    base_counts = baseline["parameters"]
    base_time = time_to_target(baseline["curve"], target)
    scene_counts = sorted(set(config.scene_counts) | {config.memory_target_scenes})
    for result in methods.values():
        t = time_to_target(result["curve"], target)
        result["time_to_target_seconds"] = t
        result["per_scene_time_to_target_seconds"] = None if t is None else t / k
        result["time_ratio"] = None if t is None or not base_time else t / base_time
        result["data_prep_seconds_per_scene"] = result["data_prep_seconds"] / k
        result["effective_memory_bytes"] = {
            str(n): effective_memory_per_scene(result["parameters"], n) for n in scene_counts
        }
        result["effective_memory_ratio"] = {
            str(n): effective_memory_per_scene(result["parameters"], n) / effective_memory_per_scene(base_counts, n)
            for n in scene_counts
        }
    # The other way round, for when a latent method cannot reach the baseline's quality: time to the latent
    # method's own final quality (minus the margin), for it and for the baseline.
    for name in ("latent-micro", "latent-micro-macro"):
        result = methods[name]
        level = result["curve"][-1]["psnr"] - config.target_margin_db
        own, base = time_to_target(result["curve"], level), time_to_target(baseline["curve"], level)
        result["at_own_quality"] = {
            "psnr": level,
            "per_scene_seconds": None if own is None else own / k,
            "baseline_per_scene_seconds": None if base is None else base / k,
            "ratio": None if own is None or not base else own / base,
        }
    n = config.memory_target_scenes
    verdicts = {}
    for name in ("latent-micro", "latent-micro-macro"):
        result = methods[name]
        memory_ratio = effective_memory_per_scene(result["parameters"], n) / effective_memory_per_scene(base_counts, n)
        verdicts[name] = {
            "reaches_quality_target": result["time_to_target_seconds"] is not None,
            "time_ratio": result["time_ratio"],
            "time_target_met": result["time_ratio"] is not None and result["time_ratio"] <= config.time_target,
            "memory_ratio": memory_ratio,
            "memory_target_met": memory_ratio <= config.memory_target,
        }
    report["targets"] = {
        "quality_target_psnr": target,
        "baseline_final_curve_psnr": baseline["curve"][-1]["psnr"],
        "time_target": config.time_target,
        "memory_target": config.memory_target,
        "memory_target_scenes": n,
        "verdicts": verdicts,
        "limits": _limits(report, config, target),
    }
    report["paper_size_accounting"] = paper_size_accounting()


def _limits(report: Dict[str, Any], config: BenchmarkConfig, target: float) -> List[str]:
    """Plain statements of what bounds the figures of this run."""
    methods, notes = report["methods"], []
    ceiling = methods["latent-micro"].get("curve_autoencoder_psnr")
    if ceiling is not None:
        notes.append(
            f"Latent methods cannot exceed the autoencoder's own reconstruction of the held-out views "
            f"({ceiling:.2f} dB PSNR on the curve's views); the quality target is {target:.2f} dB."
        )
    ae = report["one_off"].get("autoencoder", {})
    if "seconds" in ae:
        notes.append(
            f"The autoencoder was trained from scratch for {_fmt_seconds(ae['seconds'])} on "
            f"{ae['num_train_images']} images (held-out PSNR {ae['held_out_psnr']:.2f} dB); the paper fine-tunes "
            "Stable Diffusion's VAE, trained on billions of images."
        )
    basis = report["one_off"].get("basis", {})
    if "seconds" in basis:
        notes.append(
            f"The basis was learned on {basis['num_scenes']} scenes for {_fmt_seconds(basis['seconds'])} (the paper: "
            "500 scenes, 100 epochs on a GPU)."
        )
    rgb = methods["triplane-rgb"]
    notes.append(
        f"The baseline's final PSNR ({rgb['curve'][-1]['psnr']:.2f} dB) is what it reached in its "
        f"{config.rgb_minutes:g} min budget; a longer budget raises the target and the latent methods' times with it."
    )
    notes.append(
        "All K scenes train jointly; per-scene time is the joint training time divided by K. Evaluation is excluded "
        "from the training clock; data preparation (image loading, and for latent methods encoding every training "
        "image once) is reported separately."
    )
    return notes


def _fmt_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "not reached"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def _fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{100 * r:.0f}%"


def markdown_report(report: Dict[str, Any]) -> str:
    """The markdown table and notes of a summarised report."""
    settings, targets, machine = report["settings"], report["targets"], report["machine"]
    n = str(targets["memory_target_scenes"])
    k = settings["num_new_scenes"]
    memory_key = "peak_cuda_bytes" if settings["device"] == "cuda" else "peak_rss_bytes"
    lines = [
        f"### Benchmark: {k} new scenes at {settings['image_size']} px, preset `{settings['preset']}`",
        "",
        f"Quality target: {targets['quality_target_psnr']:.2f} dB held-out PSNR (triplane-rgb's final "
        f"{targets['baseline_final_curve_psnr']:.2f} dB minus {settings['target_margin_db']} dB).",
        "",
        f"| method | final PSNR (dB) | SSIM | time to target per scene | ratio | effective memory per scene at N={n} "
        f"| ratio | peak {'GPU memory' if settings['device'] == 'cuda' else 'RSS (over imports)'} | train rays/s "
        "| render fps (latent render / decode) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["methods"].items():
        render = r.get("render", {})
        has_decoder = r["parameters"]["shared"]["autoencoder"] > 0
        decode = f"{render['decode_fps']:.1f}" if render and has_decoder else "no decoder"
        fps = f"{render['fps']:.2f} ({render['latent_render_fps']:.2f} / {decode})" if render else "-"
        peak = r.get(memory_key)
        if peak and memory_key == "peak_rss_bytes":
            peak_text = f"{_fmt_bytes(peak)} (+{_fmt_bytes(max(peak - r['rss_before_setup_bytes'], 0))})"
        else:
            peak_text = _fmt_bytes(peak) if peak else "-"
        lines.append(
            f"| {METHOD_LABELS[name]} | {r['final']['psnr']:.2f} | {r['final']['ssim']:.3f} "
            f"| {_fmt_seconds(r['per_scene_time_to_target_seconds'])} | {_fmt_ratio(r['time_ratio'])} "
            f"| {_fmt_bytes(r['effective_memory_bytes'][n])} | {_fmt_ratio(r['effective_memory_ratio'][n])} "
            f"| {peak_text} | {r['rays_per_second']:,.0f} | {fps} |"
        )
    lines += ["", "Effective memory per scene (per-scene parameters + shared parameters / N):", ""]
    counts = list(report["methods"]["triplane-rgb"]["effective_memory_bytes"])
    lines.append("| method | " + " | ".join(f"N={c}" for c in counts) + " |")
    lines.append("|---|" + "---|" * len(counts))
    for name, r in report["methods"].items():
        cells = [
            f"{_fmt_bytes(r['effective_memory_bytes'][c])} ({_fmt_ratio(r['effective_memory_ratio'][c])})"
            for c in counts
        ]
        lines.append(f"| {METHOD_LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", "One-off costs, shared by the whole collection (not per scene):", ""]
    one_off = report["one_off"]
    lines.append(f"- scene generation: {_fmt_seconds(one_off['generate_seconds'])}")
    ae = one_off.get("autoencoder", {})
    if "seconds" in ae:
        lines.append(
            f"- autoencoder training: {_fmt_seconds(ae['seconds'])}, {ae['parameters']:,} parameters, held-out "
            f"reconstruction PSNR {ae['held_out_psnr']:.2f} dB"
        )
    elif ae:
        lines.append(f"- autoencoder: given ({ae['given']})")
    basis = one_off.get("basis", {})
    if "seconds" in basis:
        lines.append(
            f"- basis training: {_fmt_seconds(basis['seconds'])} on {basis['num_scenes']} scenes, "
            f"held-out PSNR {basis['held_out_psnr']:.2f} dB"
        )
    elif basis:
        lines.append(f"- basis: given ({basis['given']})")
    lines += [
        "",
        "Data preparation per scene (not in the times above): "
        + ", ".join(f"{name} {_fmt_seconds(r['data_prep_seconds_per_scene'])}" for name, r in report["methods"].items())
        + ".",
    ]
    lines += [
        "",
        f"Against the targets (time <= {_fmt_ratio(targets['time_target'])} of the baseline's, effective "
        f"memory at N={n} <= {_fmt_ratio(targets['memory_target'])}):",
        "",
    ]
    for name, v in targets["verdicts"].items():
        if v["reaches_quality_target"]:
            time_text = (
                f"time {_fmt_ratio(v['time_ratio'])} of the baseline's: {'met' if v['time_target_met'] else 'not met'}"
            )
        else:
            time_text = "does not reach the quality target within its budget: time target not met"
        lines.append(
            f"- {METHOD_LABELS[name]}: {time_text}; memory {_fmt_ratio(v['memory_ratio'])}: "
            f"{'met' if v['memory_target_met'] else 'not met'}."
        )
    lines += [
        "",
        "At each latent method's own final quality instead (its final PSNR minus the margin; not the target):",
        "",
    ]
    for name in ("latent-micro", "latent-micro-macro"):
        q = report["methods"][name]["at_own_quality"]
        lines.append(
            f"- {q['psnr']:.2f} dB: {METHOD_LABELS[name]} {_fmt_seconds(q['per_scene_seconds'])} per scene, "
            f"triplane-rgb {_fmt_seconds(q['baseline_per_scene_seconds'])} per scene (ratio {_fmt_ratio(q['ratio'])})."
        )
    paper = report["paper_size_accounting"]
    lines += [
        "",
        f"Paper: {100 * PAPER['time_reduction']:.0f}% less training time and {100 * PAPER['memory_reduction']:.0f}% "
        f"less effective memory per scene at {PAPER['scenes']} scenes, at about {PAPER['psnr_db']:.0f} dB "
        f"({PAPER['setting']}). This accounting at the paper's sizes (SD-VAE with "
        f"{paper['micro_macro']['shared']['autoencoder']:,} parameters) gives "
        f"{_fmt_ratio(paper['ratio_at_1000'])} of the baseline at {PAPER['scenes']} scenes.",
        "",
        "What limits these figures:",
        "",
    ]
    lines += [f"- {note}" for note in targets["limits"]]
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores{gpu}, "
        f"{_fmt_bytes(machine['ram_bytes'] or 0)} RAM; {versions}. Wall time {report['wall_seconds'] / 60:.1f} min.",
        "",
        "![held-out PSNR against training time](psnr_vs_time.png)",
        "![effective memory per scene](memory_per_scene.png)",
        "",
    ]
    return "\n".join(lines)


def write_plots(report: Dict[str, Any], output_dir: Path) -> List[Path]:
    """psnr_vs_time.png (held-out PSNR and SSIM against training time per scene) and memory_per_scene.png."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = report["settings"]["num_new_scenes"]
    target = report["targets"]["quality_target_psnr"]
    figure = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for name, r in report["methods"].items():
        curve = [p for p in r["curve"] if p["train_seconds"] > 0]
        times = [p["train_seconds"] / k for p in curve]
        line = axes[0].plot(times, [p["psnr"] for p in curve], marker="o", label=METHOD_LABELS[name])[0]
        axes[1].plot(times, [p["ssim"] for p in curve], marker="o", color=line.get_color(), label=METHOD_LABELS[name])
        t = r.get("per_scene_time_to_target_seconds")
        if t is not None:
            axes[0].axvline(t, color=line.get_color(), linestyle=":", linewidth=1)
    axes[0].axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:.2f} dB")
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[1].set_ylabel("held-out SSIM")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(f"training time per scene (s; {k} scenes trained jointly)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    psnr_path = output_dir / "psnr_vs_time.png"
    figure.savefig(psnr_path)

    figure = Figure(figsize=(6.5, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    smallest = min(min(r["effective_memory_bytes"].values()) for r in report["methods"].values())
    unit, scale = ("MiB", 2**20) if smallest >= 2**20 else ("KiB", 2**10)
    for name, r in report["methods"].items():
        counts = [int(c) for c in r["effective_memory_bytes"]]
        values = [r["effective_memory_bytes"][str(c)] / scale for c in counts]
        ax.plot(counts, values, marker="o", label=METHOD_LABELS[name])
    ax.axvline(report["targets"]["memory_target_scenes"], color="gray", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("scenes sharing the autoencoder / basis / MLP (N)")
    ax.set_ylabel(f"effective memory per scene ({unit})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    memory_path = output_dir / "memory_per_scene.png"
    figure.savefig(memory_path)
    return [psnr_path, memory_path]


def write_outputs(report: Dict[str, Any], output_dir: Path) -> None:
    """benchmark.json, benchmark.md and the two plots."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "benchmark.json").write_text(json.dumps(report, indent=2))
    (output_dir / "benchmark.md").write_text(markdown_report(report))
    write_plots(report, output_dir)


def quiet_diffusers() -> None:
    """Silences diffusers' advice to install `accelerate` when the autoencoder is loaded (it is not needed)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()


def _job_main(argv: List[str]) -> None:
    """Entry of a training process: `python -m latent_triplane_ns.benchmark JOB.json`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_diffusers()
    job = TrainingJob(**json.loads(Path(argv[0]).read_text()))
    run_job(job)


if __name__ == "__main__":
    _job_main(sys.argv[1:])
