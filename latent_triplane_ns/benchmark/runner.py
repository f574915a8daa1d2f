"""The benchmark run: data, the one-off autoencoder and basis, then every compared method on the new scenes."""

from __future__ import annotations

import os
import platform
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Sequence

import torch

from latent_triplane_ns.benchmark.accounting import eval_schedule
from latent_triplane_ns.benchmark.config import NEVER, BenchmarkConfig, FieldSizes
from latent_triplane_ns.benchmark.job import TrainingJob, run_job, run_job_process, write_config
from latent_triplane_ns.benchmark.progress import StageProgress, job_progress
from latent_triplane_ns.benchmark.report import markdown_report, summarize, write_outputs


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
    config.max_num_iterations = NEVER
    config.steps_per_save = NEVER
    config.steps_per_eval_batch = NEVER
    config.steps_per_eval_image = NEVER
    config.steps_per_eval_all_images = NEVER
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
    "cpu": {
        "scene": 1.6,
        "encode": 0.1,
        "decode": 0.4,
        "sample": 4e-6,
        "train_sample": 3e-6,
        "joint_step": 1.7,
        "process": 25.0,
    },
    "cuda": {
        "scene": 1.6,
        "encode": 0.002,
        "decode": 0.005,
        "sample": 2e-8,
        "train_sample": 1e-8,
        "joint_step": 0.05,
        "process": 30.0,
    },
}
"""Seconds per generated 128 px scene of 60 views (one core), per encoded and per decoded 128 px image, per ray
sample of a rendered view and of a training step, per joint (autoencoder and scenes) step of the basis stage, and
per training process start (imports, setup)."""


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
        fit_step = unit["train_sample"] * config.latent_rays_per_batch * samples
        steps = config.basis_fit_steps * fit_step + config.basis_joint_steps * unit["joint_step"] * area
        plan["basis"] = steps + unit["process"] + encode + 2 * n * latent_view
    evaluated = (config.curve_points + 1) * k * config.eval_views_per_scene + k * config.num_test_views
    evaluated += config.render_views + 1
    plan["triplane-rgb"] = config.rgb_minutes * 60 + unit["process"] + evaluated * unit["sample"] * samples * pixels
    for name in ("latent-micro", "latent-micro-macro"):
        encode = unit["encode"] * area * k * config.num_train_views
        plan[name] = config.latent_minutes * 60 + unit["process"] + encode + evaluated * latent_view
    return plan


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
    with StageProgress(plan, enabled=show_progress) as progress:
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

            # 3. The basis (one-off), the paper's stage 1 on [0, N): scenes, basis and MLP fitted with the
            # autoencoder frozen, then the autoencoder trained with them (its latent space made 3D-aware).
            progress.begin("basis", "training the 3D-aware basis (one-off)", plan["basis"])
            basis_config = method_trainer_config(
                config.basis_method,
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
                fit_steps=config.basis_fit_steps,
            )
            basis_config.max_num_iterations = config.basis_fit_steps + config.basis_joint_steps
            write_config(basis_config)
            job = TrainingJob(
                name="basis",
                config_file=str(basis_config.get_base_dir() / "config.yml"),
                budget_seconds=None,
                eval_times=[0.0],
                eval_views_per_scene=1,
                render_views=0,
                final_eval=False,
                progress_file=str(logs_dir / "basis.progress.jsonl"),
                result_file=str(logs_dir / "basis.json"),
                seed=config.seed,
            )
            # A one-off cost, not a compared method: it runs in this process (its output goes to the log).
            with open(logs_dir / "basis.log", "w") as log, redirect_stdout(log), redirect_stderr(log):
                result = run_job(job, on_event=job_progress(progress))
            if config.device == "cuda":
                torch.cuda.empty_cache()
            basis_dir = Path(result["base_dir"]) / "basis"
            report["one_off"]["basis"] = {
                "seconds": result["train_seconds"],
                "steps": result["steps"],
                "num_scenes": result["num_scenes"],
                "fit_steps": config.basis_fit_steps,
                "joint_steps": config.basis_joint_steps,
                "held_out_psnr": result["curve"][-1]["psnr"],
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
            write_config(trainer_config)
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
            report["methods"][name] = run_job_process(job, logs_dir / f"{name}.log", job_progress(progress))
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
