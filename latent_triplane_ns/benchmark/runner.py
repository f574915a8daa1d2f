"""The whole benchmark run: its stages in order, the machine it ran on, and the report it writes."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from latent_triplane_ns.autoencoder import AutoencoderConfig
from latent_triplane_ns.benchmark.config import BenchmarkConfig
from latent_triplane_ns.benchmark.plan import planned_seconds, sweep_stage
from latent_triplane_ns.benchmark.progress import StageProgress
from latent_triplane_ns.benchmark.report import markdown_report, summarize, write_outputs
from latent_triplane_ns.benchmark.resume import StageRecords, folder_identity
from latent_triplane_ns.benchmark.stages import (
    Workspace,
    autoencoder_key,
    autoencoder_problem,
    autoencoder_stage,
    basis_key,
    basis_problem,
    basis_stage,
    choose_scenes,
    compared_runs,
    data_key,
    given_basis,
    method_key,
    method_stage,
    run_folder,
)
from latent_triplane_ns.scene_io import CollectionError


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


def settings_json(config: Any) -> Dict[str, Any]:
    """A settings dataclass as plain JSON types."""

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(asdict(config))


def run_benchmark(config: BenchmarkConfig, show_progress: bool = True) -> Dict[str, Any]:
    """Runs the whole benchmark and writes benchmark.json, benchmark.md and the plots into config.output_dir.

    Rerun into the same output folder (after a kill, say), it continues: every stage recorded as complete with the
    same settings is reused with the figures it measured then (`StageRecords`); an unfinished autoencoder training
    resumes from its last checkpoint; an unfinished basis or method run starts again, with a line saying why.
    """
    from rich.console import Console

    console = Console()
    if config.autoencoder is not None:
        from latent_triplane_ns.shipped import resolve_autoencoder_folder

        config = replace(config, autoencoder=resolve_autoencoder_folder(config.autoencoder))
    if config.basis is not None and config.autoencoder is not None:
        from latent_triplane_ns.basis import read_basis_checkpoint

        # the cpu preset names the shipped autoencoder: with a basis, the basis's own (fine-tuned) one is used
        read_basis_checkpoint(Path(config.basis)).check_autoencoder(Path(config.autoencoder))  # names both
        console.print(f"The basis brings its own autoencoder (fine-tuned with it); {config.autoencoder} is not used.")
        config = replace(config, autoencoder=None)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
    out = Path(config.output_dir)
    workspace = Workspace(data=config.resolved_data_dir(), runs=out / "runs", logs=out / "logs")
    workspace.logs.mkdir(parents=True, exist_ok=True)
    workspace.runs.mkdir(parents=True, exist_ok=True)
    sizes = config.resolved_sizes()
    plan = planned_seconds(config)
    console.print(
        f"[bold]ltn-benchmark[/bold] preset {config.preset}: K={config.num_new_scenes} new scenes at "
        f"{config.image_size} px on {config.device}; expected wall time about {sum(plan.values()) / 60:.0f} min "
        f"({', '.join(f'{k} {v / 60:.1f}' for k, v in plan.items())} min)"
    )
    report: Dict[str, Any] = {
        "machine": machine_info(),
        "settings": settings_json(config),
        "plan_seconds": plan,
        "one_off": {},
        "methods": {},
    }
    one_off = report["one_off"]
    wall_start = time.perf_counter()
    with StageProgress(plan, enabled=show_progress) as progress:
        records = StageRecords(workspace.logs, say=progress.say)

        def figures(record: Dict[str, Any], stage: str) -> Dict[str, Any]:
            if stage not in records.reused:
                return record["figures"]
            progress.skip(stage)
            return {**record["figures"], "reused": True}

        progress.begin("generate", "generating scenes", 1.0)
        # always run: it checks the collection and names the scenes, and keeps the complete scenes already written
        basis_names, new_names, seconds = choose_scenes(config, workspace)
        baseline_names = new_names[: config.baseline_num_scenes or len(new_names)]
        progress.end()
        generated = records.run("generate", data_key(config, workspace), lambda: {"generate_seconds": seconds})
        one_off["generate_seconds"] = generated["figures"]["generate_seconds"]  # the first run's, when reused
        if config.basis is None and len(basis_names) < sizes.num_basis:
            raise CollectionError(
                f"{workspace.data}: {len(basis_names)} basis scene(s), too few for a basis of {sizes.num_basis} "
                "plane sets (--sizes.num-basis)"
            )
        if config.basis is not None:
            basis_dir, one_off["basis"] = given_basis(config, new_names, sizes)
            basis_id = folder_identity(config.basis)
        else:
            if config.autoencoder is not None:
                autoencoder, one_off["autoencoder"] = autoencoder_stage(
                    config, workspace, basis_names, out / "autoencoder", progress
                )
                autoencoder_id = folder_identity(config.autoencoder)
            else:
                ae_dir = out / "autoencoder"
                record = records.run(
                    "autoencoder",
                    autoencoder_key(config, workspace, basis_names),
                    lambda: autoencoder_stage(config, workspace, basis_names, ae_dir, progress)[1],
                    outputs_problem=lambda: autoencoder_problem(ae_dir, config.autoencoder_training),
                )
                one_off["autoencoder"] = figures(record, "autoencoder")
                autoencoder = AutoencoderConfig(source="pretrained", pretrained_path=ae_dir)
                autoencoder_id = record["id"]
            record = records.run(
                "basis",
                basis_key(config, workspace, basis_names, autoencoder_id, sizes),
                lambda: basis_stage(config, workspace, basis_names, autoencoder, sizes, plan["basis"], progress)[1],
                outputs_problem=lambda: basis_problem(run_folder(workspace, "basis", config.basis_method) / "basis"),
                leftover=run_folder(workspace, "basis", config.basis_method),
                restart_reason="the benchmark keeps no checkpoint of this stage mid-run, so it starts again from step 0",
            )
            one_off["basis"] = figures(record, "basis")
            basis_dir, basis_id = Path(record["figures"]["path"]), record["id"]

        def fit(stage: str, run, scenes, settings: BenchmarkConfig, basis: Optional[str]) -> Dict[str, Any]:
            record = records.run(
                stage,
                method_key(settings, workspace, run, scenes, sizes, basis),
                lambda: method_stage(settings, workspace, stage, run, scenes, sizes, progress),
                leftover=run_folder(workspace, stage, run[0]),
                restart_reason="a timed run cannot be continued cleanly (its training clock, curve, memory peak and "
                "learning-rate horizon belong to one process), so it starts again",
            )
            return figures(record, stage)

        for name, run in compared_runs(config, basis_dir, sizes).items():
            if name == "triplane-rgb":
                report["methods"][name] = fit(name, run, baseline_names, config, None)
            else:
                report["methods"][name] = fit(name, run, new_names, config, basis_id)
        for k in sorted(config.sweep_new_scenes):
            fewer = replace(config, latent_minutes=config.latent_minutes * k / len(new_names))
            runs = compared_runs(fewer, basis_dir, sizes)
            for name in config.latent_runs():
                sweep = report.setdefault("sweep", {}).setdefault(name, {})
                sweep[str(k)] = fit(sweep_stage(name, k), runs[name], new_names[:k], fewer, basis_id)
    report["wall_seconds"] = time.perf_counter() - wall_start
    report["reused_stages"] = records.reused
    report["sizes_used"] = asdict(sizes)
    summarize(report, config)
    written = write_outputs(report, out)
    console.print(markdown_report(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"Wrote {', '.join(map(str, written))} in {report['wall_seconds'] / 60:.1f} min")
    return report
