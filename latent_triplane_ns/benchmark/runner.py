"""The whole benchmark run: its stages in order, the machine it ran on, and the report it writes."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, Dict

import torch

from latent_triplane_ns.benchmark.config import BenchmarkConfig, FieldSizes
from latent_triplane_ns.benchmark.plan import planned_seconds
from latent_triplane_ns.benchmark.progress import StageProgress
from latent_triplane_ns.benchmark.report import markdown_report, summarize, write_outputs
from latent_triplane_ns.benchmark.stages import (
    Workspace,
    autoencoder_stage,
    basis_stage,
    choose_scenes,
    compared_runs,
    given_basis,
    method_stage,
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
    """Runs the whole benchmark and writes benchmark.json, benchmark.md and the plots into config.output_dir."""
    from rich.console import Console

    console = Console()
    if config.basis is not None and config.autoencoder is not None:
        raise ValueError("give either --basis (which brings its own autoencoder) or --autoencoder, not both")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
    out = Path(config.output_dir)
    workspace = Workspace(data=config.resolved_data_dir(), runs=out / "runs", logs=out / "logs")
    workspace.logs.mkdir(parents=True, exist_ok=True)
    workspace.runs.mkdir(parents=True, exist_ok=True)
    sizes = FieldSizes(**asdict(config.sizes))
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
        progress.begin("generate", "generating scenes", 1.0)
        basis_names, new_names, one_off["generate_seconds"] = choose_scenes(config, workspace)
        progress.end()
        if config.basis is None and len(basis_names) < sizes.num_basis:
            raise CollectionError(
                f"{workspace.data}: {len(basis_names)} basis scene(s), too few for a basis of {sizes.num_basis} "
                "plane sets (--sizes.num-basis)"
            )
        if config.basis is not None:
            basis_dir, one_off["basis"] = given_basis(config, new_names, sizes)
        else:
            autoencoder, one_off["autoencoder"] = autoencoder_stage(
                config, workspace, basis_names, out / "autoencoder", progress
            )
            basis_dir, one_off["basis"] = basis_stage(
                config, workspace, basis_names, autoencoder, sizes, plan["basis"], progress
            )
        for name, run in compared_runs(config, basis_dir, sizes).items():
            report["methods"][name] = method_stage(config, workspace, name, run, new_names, sizes, progress)
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
