"""`ltn-benchmark`: latent-triplane against the triplane-rgb baseline on the same new scenes, in one command."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from typing import List, Optional

import tyro

from latent_triplane_ns.benchmark import BENCHMARK_PRESETS, BenchmarkConfig, quiet_diffusers, run_benchmark
from latent_triplane_ns.quiet import silence_harmless_warnings


@dataclass
class Benchmark(BenchmarkConfig):
    """Fit the same K new scenes with triplane-rgb, latent-triplane (per-scene planes) and latent-triplane
    Micro-Macro (against a basis learned on other scenes); write benchmark.json, benchmark.md and PNG plots of
    quality against training time and of effective memory per scene.

    `--preset` picks the sizes and budgets (toy: seconds; cpu: 2 cores, under 45 minutes; gpu: the paper's sizes);
    any other option overrides the preset's value (`--preset cpu --help` shows them).
    """

    def main(self) -> None:
        run_benchmark(self)


def _preset(args: List[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", choices=sorted(BENCHMARK_PRESETS), default="cpu")
    known, _ = parser.parse_known_args(args)
    return known.preset


def parse(args: List[str]) -> Benchmark:
    """The command line's settings: the preset named by `--preset`, overridden by every other option given."""
    preset = BENCHMARK_PRESETS[_preset(args)]()
    default = Benchmark(**{f.name: getattr(preset, f.name) for f in fields(BenchmarkConfig)})
    return tyro.cli(Benchmark, default=default, args=args)


def entrypoint(args: Optional[List[str]] = None) -> None:
    silence_harmless_warnings()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = parse(sys.argv[1:] if args is None else args)
    quiet_diffusers()
    config.main()


if __name__ == "__main__":
    entrypoint()
