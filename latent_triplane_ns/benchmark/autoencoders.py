"""The autoencoder table: compact autoencoders of several shapes trained on the same images, each judged by three
figures (its reconstruction, and the latent and decoded PSNR of new scenes fitted in its latent space)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Tuple

from latent_triplane_ns.ae_training import AETrainingConfig, progress_status
from latent_triplane_ns.autoencoder import (
    AutoencoderConfig,
    CompactAEConfig,
    load_pretrained_vae,
    vae_downsample_factor,
)
from latent_triplane_ns.benchmark.config import BenchmarkConfig, FieldSizes
from latent_triplane_ns.benchmark.job import TrainingJob, run_job_process, write_config
from latent_triplane_ns.benchmark.plan import eval_schedule
from latent_triplane_ns.benchmark.runner import settings_json
from latent_triplane_ns.benchmark.stages import (
    Workspace,
    choose_scenes,
    collection_parser,
    method_trainer_config,
    train_autoencoder_resuming,
)
from latent_triplane_ns.errors import InputError

VARIANT = re.compile(r"^f(?P<factor>\d+)c(?P<channels>\d+)(?:w(?P<width>\d+))?(?P<tiny>t)?$")
"""Name of a compact autoencoder shape: f<downsampling>c<latent channels>[w<channels of the first level>][t], `t`
for an AutoencoderTiny (an AutoencoderKL otherwise)."""


def variant_architecture(name: str) -> CompactAEConfig:
    """The compact autoencoder a variant name describes: `f8c4` is an AutoencoderKL with 8x downsampling (4 levels of
    32, 64, 64, 64 channels) and 4 latent channels; `f4c16w16` is 4x (3 levels of 16, 32, 32) with 16 latent
    channels; `f8c4t` is an AutoencoderTiny with 8x downsampling, 4 levels of 64 channels (TAESD's width) and 4 latent
    channels."""
    match = VARIANT.match(name)
    if match is None:
        raise InputError(
            f"autoencoder variant {name!r}: expected f<factor>c<channels>[w<width>][t], e.g. f8c4, f4c16 or f8c4t"
        )
    factor, channels = int(match["factor"]), int(match["channels"])
    levels = factor.bit_length()  # 2^(levels - 1) = factor
    if factor < 1 or 2 ** (levels - 1) != factor:
        raise InputError(f"autoencoder variant {name!r}: the downsampling factor must be a power of two")
    width = int(match["width"] or 32)
    if match["tiny"]:  # one width at every level, TAESD's 64 by default
        return CompactAEConfig(kind="tiny", block_out_channels=(2 * width,) * levels, latent_channels=channels)
    return CompactAEConfig(block_out_channels=(width,) + (2 * width,) * (levels - 1), latent_channels=channels)


@dataclass
class AETableConfig:
    """Which autoencoders are compared, on which scenes, with which budgets."""

    output_dir: Path = Path("outputs/ae-table")
    """Where every autoencoder, fit, ae_table.json and ae_table.md are written."""
    scenes: BenchmarkConfig = field(
        default_factory=lambda: BenchmarkConfig(
            num_basis_scenes=10, num_new_scenes=3, output_dir=Path("outputs/ae-table")
        )
    )
    """The collection and its scenes, as for ltn-benchmark: the autoencoders train on the basis scenes, the fits
    are of the new scenes (procedural cars by default; `--scenes.collection DIR` for a collection of your own)."""
    variants: Tuple[str, ...] = ("f8c4", "f4c4", "f8c8")
    """Autoencoder shapes (see `variant_architecture`), each trained here on the basis scenes."""
    trained: Tuple[str, ...] = ()
    """Autoencoders already trained by ltn-train-ae, put in the table beside the variants and judged on the same new
    scenes: their folders, or `shipped` for the one inside the package. Their training cost and held-out
    reconstruction PSNR (on their own held-out views) are what their training log recorded."""
    training: AETrainingConfig = field(default_factory=lambda: AETrainingConfig(max_minutes=4.0))
    """Recipe and budget of every autoencoder (its architecture comes from the variant)."""
    fit_minutes: float = 1.5
    """Training-time budget of the fit of the new scenes in each autoencoder's latent space."""
    fit_sizes: FieldSizes = field(
        default_factory=lambda: replace(
            FieldSizes.of_method("latent-triplane-small"), micro_features=24, macro_features=0, num_basis=0
        )
    )
    """Per-scene Tri-Planes of the fits (no basis: the figure measures the latent space, not a basis)."""
    rays_per_batch: int = 1024
    """Latent rays per step of the fits."""


def run_ae_table(config: AETableConfig, on_line=print) -> Dict[str, Any]:
    """Trains every variant, fits the new scenes in its latent space, and writes ae_table.json and ae_table.md."""
    out = Path(config.output_dir)
    scenes = config.scenes
    data = scenes.collection or scenes.data_dir or out / "data"
    workspace = Workspace(data=Path(data), runs=out / "runs", logs=out / "logs")
    workspace.logs.mkdir(parents=True, exist_ok=True)
    workspace.runs.mkdir(parents=True, exist_ok=True)
    architectures = {name: variant_architecture(name) for name in config.variants}  # bad names fail first
    trained = [_trained_autoencoder(given) for given in config.trained]
    basis_names, new_names, _ = choose_scenes(scenes, workspace)
    rows: List[Dict[str, Any]] = []
    for name, ae_dir, log in trained:
        start = time.perf_counter()
        fit = _fit_new_scenes(config, workspace, name, ae_dir, new_names)
        rows.append(_row(name, ae_dir, log, fit, log["settings"]["batch_size"], start))
        on_line(f"{name}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()})}")
    for name, architecture in architectures.items():
        start = time.perf_counter()
        training = replace(config.training, architecture=architecture)
        ae_dir = out / name / "autoencoder"

        def show(record: Dict[str, float], name: str = name) -> None:
            if record["evaluated"]:
                on_line(f"{name}: {progress_status(record)}")

        # an unfinished training of the same variant, killed in an earlier run, resumes from its last checkpoint
        log = train_autoencoder_resuming(
            training,
            collection_parser(scenes, workspace.data, basis_names),
            ae_dir,
            scenes.device,
            on_progress=show,
            say=on_line,
        )
        fit = _fit_new_scenes(config, workspace, name, ae_dir, new_names)
        rows.append(_row(name, ae_dir, log, fit, training.batch_size, start))
        on_line(f"{name}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()})}")
    report = {"settings": settings_json(config), "basis_scenes": basis_names, "new_scenes": new_names, "rows": rows}
    (out / "ae_table.json").write_text(json.dumps(report, indent=2))
    (out / "ae_table.md").write_text(markdown_table(report))
    return report


def _trained_autoencoder(given: str) -> Tuple[str, Path, Dict[str, Any]]:
    """Name, folder and training log of an autoencoder that ltn-train-ae wrote (`shipped`: the package's own)."""
    from latent_triplane_ns.ae_training import TRAINING_LOG_FILE
    from latent_triplane_ns.shipped import SHIPPED_DIR, SHIPPED_NAME, resolve_autoencoder_folder

    folder = resolve_autoencoder_folder(Path(given))
    name = f"shipped {SHIPPED_NAME}" if folder == SHIPPED_DIR else folder.name
    log_file = folder / TRAINING_LOG_FILE
    if not log_file.is_file():
        raise InputError(f"{log_file}: missing; --trained takes autoencoder folders written by ltn-train-ae")
    try:
        return name, folder, json.loads(log_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{log_file}: not valid JSON ({err})") from err


def _row(
    name: str, ae_dir: Path, log: Dict[str, Any], fit: Dict[str, Any], batch_size: int, start: float
) -> Dict[str, Any]:
    """One row of the table: the autoencoder's shape and training (from its folder and log) and its fit's figures."""
    vae = load_pretrained_vae(ae_dir)
    return {
        "name": name,
        "kind": type(vae).__name__,
        "downsample_factor": vae_downsample_factor(vae),
        "latent_channels": int(vae.config.latent_channels),
        "parameters": log["parameters"],
        "train_minutes": log["seconds"] / 60,
        "steps": log["steps"],
        "images_per_second": log["steps"] * batch_size / max(log["seconds"], 1e-9),
        "trained_on": log.get("data"),
        "reconstruction_psnr": log["eval_psnr"],
        "new_scenes_reconstruction_psnr": fit["final"]["ae_psnr"],
        "fit_latent_psnr": fit["final"]["latent_psnr"],
        "fit_decoded_psnr": fit["final"]["psnr"],
        "fit_rays_per_second": fit["rays_per_second"],
        "wall_minutes": (time.perf_counter() - start) / 60,
    }


def _fit_new_scenes(
    config: AETableConfig, workspace: Workspace, name: str, ae_dir: Path, new_names: List[str]
) -> Dict[str, Any]:
    scenes = config.scenes
    trainer_config = method_trainer_config(
        scenes.latent_method,
        collection_parser(scenes, workspace.data, new_names),
        workspace.runs,
        name,
        scenes.device,
        config.rays_per_batch,
        config.fit_sizes,
        autoencoder=AutoencoderConfig(source="pretrained", pretrained_path=ae_dir),
        basis_checkpoint=None,
        ray_steps=None,  # ray steps only: the fit measures the latent space, not a decoder tuned on renders
    )
    write_config(trainer_config)
    budget = config.fit_minutes * 60
    job = TrainingJob(
        name=name,
        config_file=str(trainer_config.get_base_dir() / "config.yml"),
        budget_seconds=budget,
        eval_times=eval_schedule(budget, min(10.0, budget), 2),
        eval_views_per_scene=1,
        render_views=0,
        final_eval=True,
        final_full_metrics=True,
        progress_file=str(workspace.logs / f"{name}.progress.jsonl"),
        result_file=str(workspace.logs / f"{name}.json"),
        seed=scenes.seed,
    )
    return run_job_process(job, workspace.logs / f"{name}.log", lambda event: None)


def markdown_table(report: Dict[str, Any]) -> str:
    """The table of the report, one row per autoencoder."""
    lines = [
        f"Variants trained here on the {len(report['basis_scenes'])} basis scenes (autoencoders trained before, on "
        f"the data their row names); new scenes fitted: {', '.join(report['new_scenes'])} (held-out views).",
        "",
        "| autoencoder | kind | trained on | factor | latent channels | parameters | training (min) | steps | "
        "images/s | held-out reconstruction PSNR (dB) | new scenes: reconstruction PSNR (dB) | fit: latent PSNR (dB) | "
        "fit: decoded PSNR (dB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['trained_on']} | {r['downsample_factor']} | {r['latent_channels']} | "
            f"{r['parameters']:,} | {r['train_minutes']:.1f} | {r['steps']} | {r['images_per_second']:.1f} | "
            f"{r['reconstruction_psnr']:.2f} | "
            f"{r['new_scenes_reconstruction_psnr']:.2f} | {r['fit_latent_psnr']:.2f} | {r['fit_decoded_psnr']:.2f} |"
        )
    return "\n".join(lines) + "\n"
