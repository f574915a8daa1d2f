"""One budgeted training run of the benchmark in nerfstudio's Trainer: held-out evaluation on its own clock,
peak memory, render timing; run in-process or in a fresh process (`python -m latent_triplane_ns.benchmark.job JOB.json`)."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from latent_triplane_ns.benchmark.accounting import count_parameters
from latent_triplane_ns.benchmark.config import NEVER


@dataclass
class TrainingJob:
    """What one training run does; written as JSON for the process that runs it."""

    name: str
    """Method key (or 'basis')."""
    config_file: str
    """nerfstudio config.yml of the run."""
    budget_seconds: Optional[float]
    """Training time after which the run stops (evaluations excluded); None runs the config's
    max_num_iterations steps (a run whose phases are counted in steps, such as the 3D-aware basis stage)."""
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
        if self.job.budget_seconds is not None:
            self.set_horizon(NEVER)
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
        if budget is not None and (self.steps == 10 or (self.pending and self.train_seconds >= self.pending[0])):
            # the decay ends where the budget is expected to end at the speed seen so far
            self.set_horizon(self.steps * budget / max(self.train_seconds, 1e-9))
        if budget is None:
            done = self.steps >= self.trainer.config.max_num_iterations
        else:
            done = self.train_seconds >= budget
        if done or (self.pending and self.train_seconds >= self.pending[0]):
            while self.pending and self.pending[0] <= self.train_seconds:
                self.pending.pop(0)
            self.evaluate()
        elif now - self.last_report > 0.5:
            self.last_report = now
            self.report({"event": "step", "train_seconds": self.train_seconds, "step": self.steps})
        if done and budget is not None:
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
    write_config(config)
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


def run_job_process(job: TrainingJob, log_file: Path, on_event: Callable[[Dict], None]) -> Dict[str, Any]:
    """Runs a job in a fresh Python process (so its peak memory is its own) and relays its progress events."""
    job_file = Path(job.result_file).with_suffix(".job.json")
    job_file.write_text(json.dumps(asdict(job), indent=2))
    Path(job.progress_file).write_text("")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    with open(log_file, "w") as log, open(job.progress_file) as events:
        process = subprocess.Popen(
            [sys.executable, "-m", "latent_triplane_ns.benchmark.job", str(job_file)],
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


def write_config(config) -> Path:
    """Writes a TrainerConfig's config.yml where nerfstudio's tools (`ns-eval`, `ns-render`, ...) look for it."""
    import yaml

    path = config.get_base_dir() / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(config), "utf8")
    return path


def quiet_diffusers() -> None:
    """Silences diffusers' advice to install `accelerate` when the autoencoder is loaded (it is not needed)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()


def _job_main(argv: List[str]) -> None:
    """Entry of a training process: `python -m latent_triplane_ns.benchmark.job JOB.json`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_diffusers()
    job = TrainingJob(**json.loads(Path(argv[0]).read_text()))
    run_job(job)


if __name__ == "__main__":
    _job_main(sys.argv[1:])
