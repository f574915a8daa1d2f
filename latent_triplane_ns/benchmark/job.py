"""One budgeted training run of the benchmark in nerfstudio's Trainer, in this process or in a fresh one
(`python -m latent_triplane_ns.benchmark.job JOB.json`): its settings, its run, and the figures it returns."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from latent_triplane_ns.atomic import write_json
from latent_triplane_ns.benchmark.accounting import count_parameters
from latent_triplane_ns.benchmark.budget import BudgetedTraining
from latent_triplane_ns.benchmark.measurement import peak_rss, reset_peak_rss, sync, time_rendering
from latent_triplane_ns.evaluation import SceneEvaluator, pick_views


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
    final_full_metrics: bool = False
    """The final evaluation gives the model's every metric (latent PSNR, the autoencoder's reconstruction PSNR of
    each view) besides PSNR and SSIM."""


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
    sync(device)
    prep_start = time.perf_counter()
    datamanager.cached_train  # noqa: B018
    sync(device)
    prep_seconds = time.perf_counter() - prep_start
    setup_seconds = time.perf_counter() - setup_start
    scene_of_view = datamanager.eval_dataset.cameras.metadata["scene_index"].view(-1).tolist()
    curve_views = pick_views(scene_of_view, job.eval_views_per_scene)
    curve_eval = SceneEvaluator(model, datamanager, curve_views, full_metrics=False)
    ae_psnr = curve_eval.autoencoder_psnr()
    clock = BudgetedTraining(trainer, job.budget_seconds, job.eval_times, curve_eval, report)
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
        full = SceneEvaluator(model, datamanager, full_metrics=job.final_full_metrics)
        evaluation = full.evaluate()
        result["final"] = {
            **evaluation.means(),
            "per_scene": {n: {k: m[k] for k in ("psnr", "ssim")} for n, m in evaluation.per_scene().items()},
            "autoencoder_psnr": full.autoencoder_psnr(),
            "num_views": len(full),
        }
    if job.render_views > 0:
        report({"event": "render"})
        cameras = [datamanager.eval_view(i)[0] for i in curve_views[: job.render_views]]
        result["render"] = time_rendering(model, cameras)
    write_json(Path(job.result_file), result)  # whole or absent: a killed run leaves no partial result
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
