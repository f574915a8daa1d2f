"""`ltn-scaling`: how the cost of training grows with the number of scenes, and with ranks against threads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, List, Union

import tyro
from rich.console import Console

from latent_triplane_ns.benchmark.scaling import (
    FieldSizes,
    RunSpec,
    ScalingReport,
    field_curve,
    run_timed,
    torchrun,
)
from latent_triplane_ns.quiet import silence_harmless_warnings

CONSOLE = Console()


@dataclass
class Common:
    """Settings of the real training runs."""

    output_dir: Path = Path("outputs/scaling")
    """Where the runs, scaling.json and scaling.md go."""
    autoencoder: Path = Path("outputs/ae-table/f8c4/autoencoder")
    """A trained compact autoencoder folder (ltn-train-ae's output) that every run encodes with, or `shipped` for the
    one inside the package."""
    scenes_per_batch: int = 16
    """Scenes per training step."""
    epochs: int = 200
    """Visits of every scene: a rank holding S scenes trains round(epochs x S / scenes_per_batch) steps."""
    rays: int = 1024
    """Rays per step and rank."""


def ns_train_args(common: Common, method: str, run: str, steps: int, num_scenes: int, data: Path, model: List[str]):
    """ns-train arguments of a `method` run on `num_scenes` procedural cars, with the model flags `model`, the
    common settings and the runs' autoencoder; nerfstudio's own evaluations off (each run ends with eval.json)."""
    return [
        method,
        *model,
        *("--output-dir", str(common.output_dir / "runs"), "--experiment-name", run, "--timestamp", "run"),
        *("--vis", "tensorboard", "--machine.device-type", "cpu", "--logging.local-writer.enable", "False"),
        *("--max-num-iterations", str(steps), "--steps-per-save", str(steps)),
        *("--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--steps-per-eval-all-images", "0"),
        *("--pipeline.datamanager.train-num-rays-per-batch", str(common.rays)),
        *("--pipeline.datamanager.scenes-per-batch", str(common.scenes_per_batch)),
        *autoencoder_args(common),
        *("procedural-cars", "--data", str(data), "--num-scenes", str(num_scenes)),
    ]


def stage2_args(common: Common, run: str, num_scenes: int, steps: int, data: Path, basis: Path | None = None):
    """ns-train arguments of a latent-triplane-small run on `num_scenes` procedural cars: against a frozen basis
    checkpoint when one is given, otherwise learning the basis and the MLP with the scenes (shared parameters
    that the ranks average at every step)."""
    frozen = ["--pipeline.model.basis-checkpoint", str(basis)] if basis is not None else []
    return ns_train_args(common, "latent-triplane-small", run, steps, num_scenes, data, frozen)


def autoencoder_args(common: Common) -> List[str]:
    """The ns-train flags of the runs' autoencoder."""
    from latent_triplane_ns.shipped import resolve_autoencoder_folder

    folder = resolve_autoencoder_folder(common.autoencoder)
    return ["--pipeline.model.autoencoder.source", "pretrained", "--pipeline.model.autoencoder.pretrained-path"] + [
        str(folder)
    ]


def _steps(common: Common, scenes_per_rank: int) -> int:
    return max(1, round(common.epochs * scenes_per_rank / min(common.scenes_per_batch, scenes_per_rank)))


@dataclass
class Field:
    """Micro-benchmark: one step of the field alone (forward, backward, update) against the number of scenes."""

    output_dir: Path = Path("outputs/scaling")
    """Where scaling-field.json and .md go."""
    num_scenes: List[int] = field(default_factory=lambda: [10, 100, 1000])
    """Collection sizes N."""
    scenes_per_batch: List[int] = field(default_factory=lambda: [0, 8, 16, 32])
    """Scenes per step (0: rays uniform over all scenes)."""
    sizes: FieldSizes = field(default_factory=FieldSizes.of_method)
    """Field and batch sizes (by default latent-triplane-small's)."""

    def main(self) -> None:
        rows = field_curve(self.num_scenes, self.scenes_per_batch, self.sizes)
        base = {r["scenes_per_batch"]: r["seconds_per_step"] for r in rows if r["num_scenes"] == self.num_scenes[0]}
        for row in rows:
            row["relative_to_smallest_n"] = row["seconds_per_step"] / base[row["scenes_per_batch"]]
        report = ScalingReport({"field step against N (1 thread)": rows})
        _, md = report.write(self.output_dir / "field")
        CONSOLE.print(md.read_text())


@dataclass
class Stage2:
    """Real stage-2 runs (one process, all threads) at several N: seconds per step and per scene, same epochs."""

    common: Common = field(default_factory=Common)
    """Run settings."""
    num_scenes: List[int] = field(default_factory=lambda: [10, 100])
    """Collection sizes N."""

    def main(self) -> None:
        rows = []
        for n in self.num_scenes:
            steps = _steps(self.common, n)
            data = self.common.output_dir / "data" / f"cars-{n}"
            name = f"stage2-n{n}"
            args = stage2_args(self.common, name, n, steps, data)
            timed = run_timed(RunSpec(name, torchrun(1, args), threads=2), self.common.output_dir / f"{name}.log")
            info = _eval_info(self.common, name)
            seconds = info["train_seconds"][0]
            rows.append(
                {
                    "num_scenes": n,
                    "steps": steps,
                    "train_seconds": seconds,
                    "seconds_per_step": seconds / steps,
                    "seconds_per_scene": seconds / n,
                    "latent_psnr": info["results"].get("latent_psnr"),
                    "psnr": info["results"].get("psnr"),
                    "peak_rss_gib": timed["peak_rss_gib"],
                }
            )
            CONSOLE.print(rows[-1])
        _, md = ScalingReport({"stage 2 against N": rows}).write(self.common.output_dir / "stage2")
        CONSOLE.print(md.read_text())


@dataclass
class Ranks:
    """At N scenes: 1 process with 2 threads against 2 ranks with 1 thread each, the same epochs (with at least
    scenes_per_batch scenes per rank, every scene then gets the same rays in both). First with the basis and MLP
    learned (averaged over the ranks at every step), then against the basis the first run wrote, frozen."""

    common: Common = field(default_factory=Common)
    """Run settings."""
    num_scenes: int = 20
    """N."""

    def main(self) -> None:
        rows = []
        data = self.common.output_dir / "data" / f"cars-{self.num_scenes}"
        basis = None
        for shared in ("learned", "frozen"):
            for ranks, threads in ((1, 2), (2, 1)):
                steps = _steps(self.common, math.ceil(self.num_scenes / ranks))
                name = f"{shared}-ranks{ranks}-threads{threads}"
                args = stage2_args(
                    self.common, name, self.num_scenes, steps, data, basis if shared == "frozen" else None
                )
                log = self.common.output_dir / f"{name}.log"
                timed = run_timed(RunSpec(name, torchrun(ranks, args), threads), log)
                info = _eval_info(self.common, name)
                seconds = max(info["train_seconds"])
                rows.append(
                    {
                        "basis": shared,
                        "ranks": ranks,
                        "threads_per_rank": threads,
                        "steps": steps,
                        "train_seconds": seconds,
                        "wall_seconds": timed["seconds"],
                        "steps_per_second": steps / seconds,
                        "scenes_per_hour": self.num_scenes * 3600 / seconds,
                        "speedup": 1.0 if ranks == 1 else rows[-1]["train_seconds"] / seconds,
                        "latent_psnr": info["results"].get("latent_psnr"),
                        "psnr": info["results"].get("psnr"),
                        "peak_rss_gib_per_rank": timed["peak_rss_gib"],
                    }
                )
                CONSOLE.print(rows[-1])
                if basis is None:  # the basis the first run learned: what the frozen runs fit against
                    basis = self.common.output_dir / "runs" / name / "latent-triplane-small" / "run" / "basis"
        _, md = ScalingReport({f"N={self.num_scenes}: ranks against threads": rows}).write(
            self.common.output_dir / "ranks"
        )
        CONSOLE.print(md.read_text())


@dataclass
class Stage1:
    """Stage 1 (latent-triplane-ae-small from the runs' autoencoder: scenes fitted with it frozen, then autoencoder,
    basis and scenes jointly) at N scenes: 1 process with 2 threads against 2 ranks with 1 thread each, the same
    steps. Each rank takes a full batch per step from its own scenes, so 2 ranks do twice the work of a step; the
    shared parameters (basis, MLP, and the autoencoder in the joint phase) are averaged over the ranks every step."""

    common: Common = field(default_factory=Common)
    """Run settings (epochs is not used: the steps are given here)."""
    num_scenes: int = 20
    """N."""
    fit_steps: int = 300
    """Steps with the autoencoder frozen."""
    joint_steps: int = 100
    """Steps training the autoencoder, the basis and the scenes jointly."""

    def main(self) -> None:
        rows = []
        data = self.common.output_dir / "data" / f"cars-{self.num_scenes}"
        steps = self.fit_steps + self.joint_steps
        method = "latent-triplane-ae-small"
        for ranks, threads in ((1, 2), (2, 1)):
            name = f"stage1-ranks{ranks}-threads{threads}"
            model = [
                "--pipeline.model.ray-steps",
                str(self.fit_steps),
                "--pipeline.model.joint-steps",
                str(self.joint_steps),
            ]
            args = ns_train_args(self.common, method, name, steps, self.num_scenes, data, model)
            timed = run_timed(RunSpec(name, torchrun(ranks, args), threads), self.common.output_dir / f"{name}.log")
            info = _eval_info(self.common, name, method)
            seconds = max(info["train_seconds"])
            rows.append(
                {
                    "ranks": ranks,
                    "threads_per_rank": threads,
                    "steps": steps,
                    "train_seconds": seconds,
                    "steps_per_second": steps / seconds,
                    "rank_steps_per_second": ranks * steps / seconds,
                    "throughput_speedup": 1.0 if ranks == 1 else ranks * rows[0]["train_seconds"] / seconds,
                    "psnr": info["results"].get("psnr"),
                    "peak_rss_gib_per_rank": timed["peak_rss_gib"],
                }
            )
            CONSOLE.print(rows[-1])
        phases = f"{self.fit_steps} fit + {self.joint_steps} joint steps"
        title = f"N={self.num_scenes}, stage 1 ({phases}): ranks against threads"
        _, md = ScalingReport({title: rows}).write(self.common.output_dir / "stage1")
        CONSOLE.print(md.read_text())


def _eval_info(common: Common, name: str, method: str = "latent-triplane-small") -> dict:
    import json

    return json.loads((common.output_dir / "runs" / name / method / "run" / "eval.json").read_text())


def entrypoint() -> None:
    silence_harmless_warnings()
    command = Union[
        Annotated[Field, tyro.conf.subcommand("field")],
        Annotated[Stage2, tyro.conf.subcommand("stage2")],
        Annotated[Ranks, tyro.conf.subcommand("ranks")],
        Annotated[Stage1, tyro.conf.subcommand("stage1")],
    ]
    tyro.cli(command).main()  # type: ignore[call-overload]


if __name__ == "__main__":
    entrypoint()
