"""Benchmark: `latent-triplane` against the `triplane-rgb` baseline on the same new scenes, in one run on one machine.

The run generates a procedural collection, trains (or loads) the autoencoder and a basis checkpoint on the first
`num_basis_scenes` scenes, then fits the next K scenes, held out from that collection, with three methods, each in
its own process and in nerfstudio's own Trainer: `triplane-rgb`; `latent-triplane` with per-scene planes only (the
paper's latent Tri-Planes); and `latent-triplane` Micro-Macro against the basis. It records held-out PSNR/SSIM
against training time, the time to reach the baseline's quality, peak memory, the effective memory per scene
(per-scene parameters plus shared parameters over the number of scenes), training rays/s and render speed, and
writes them as JSON, a markdown table and PNG plots.
"""

from latent_triplane_ns.benchmark.accounting import (
    count_parameters,
    effective_memory_per_scene,
    paper_size_accounting,
    time_to_target,
)
from latent_triplane_ns.benchmark.config import BENCHMARK_PRESETS, BenchmarkConfig, FieldSizes
from latent_triplane_ns.benchmark.job import quiet_diffusers
from latent_triplane_ns.benchmark.plan import eval_schedule
from latent_triplane_ns.benchmark.runner import run_benchmark

__all__ = [
    "BENCHMARK_PRESETS",
    "BenchmarkConfig",
    "FieldSizes",
    "count_parameters",
    "effective_memory_per_scene",
    "eval_schedule",
    "paper_size_accounting",
    "quiet_diffusers",
    "run_benchmark",
    "time_to_target",
]
