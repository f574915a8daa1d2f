"""`ltn-scaling`: how the cost of training grows with the number of scenes, and with ranks against threads."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, List, Sequence, Union

import tyro
from rich.console import Console

from latent_triplane_ns.benchmark.config import preset_config
from latent_triplane_ns.benchmark.scaling import (
    FieldSizes,
    RunSpec,
    ScalingReport,
    baseline_size_args,
    field_curve,
    per_scene_memory,
    run_timed,
    step_seconds,
    torchrun,
)
from latent_triplane_ns.quiet import silence_harmless_warnings
from latent_triplane_ns.trainer import LatentTrainerConfig

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


def ns_train_args(
    common: Common,
    method: str,
    run: str,
    steps: int,
    num_scenes: int,
    data: Path,
    model: List[str],
    cars: Sequence[str] = (),
):
    """ns-train arguments of a `method` run on `num_scenes` procedural cars (with the dataparser flags `cars`), with
    the model flags `model`, the common settings and, for a latent method, the runs' autoencoder; nerfstudio's own
    evaluations off (a scene-parallel run ends with eval.json)."""
    return [
        method,
        *model,
        *("--output-dir", str(common.output_dir / "runs"), "--experiment-name", run, "--timestamp", "run"),
        *("--vis", "tensorboard", "--machine.device-type", "cpu", "--logging.local-writer.enable", "False"),
        *("--max-num-iterations", str(steps), "--steps-per-save", str(steps)),
        *(("--steps-per-scene", "0") if isinstance(preset_config(method), LatentTrainerConfig) else ()),
        *("--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--steps-per-eval-all-images", "0"),
        *("--pipeline.datamanager.train-num-rays-per-batch", str(common.rays)),
        *("--pipeline.datamanager.scenes-per-batch", str(common.scenes_per_batch)),
        *(autoencoder_args(common) if method != "triplane-rgb" else []),
        *("procedural-cars", "--data", str(data), "--num-scenes", str(num_scenes), *cars),
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


@dataclass
class Memory:
    """Memory per scene, measured: short runs of Micro-Macro (latent-triplane-small against a frozen basis, stage 2)
    and of triplane-rgb (with latent-triplane-small's field sizes, as the benchmark compares them) on a small and a
    large collection of small procedural cars, each alone in one process. A scene's cost is the growth from the small
    to the large collection divided by the scenes added: peak resident memory (parameters, optimiser state, cached
    latents or RGB images, everything) and the checkpoint's bytes."""

    common: Common = field(default_factory=lambda: Common(autoencoder=Path("shipped")))
    """Run settings (epochs is not used: every run makes `steps` steps)."""
    num_scenes: List[int] = field(default_factory=lambda: [10, 1000])
    """Collection sizes N, smallest first."""
    steps: int = 20
    """Training steps of every run (the optimiser state of every scene exists after the first)."""
    image_size: int = 64
    """Side of the generated images."""
    num_train_views: int = 10
    """Training views per scene."""

    def main(self) -> None:
        cars = ["--image-size", str(self.image_size), "--num-train-views", str(self.num_train_views)]
        cars += ["--num-test-views", "2"]
        data = self.common.output_dir / "data" / f"cars-{self.image_size}px-{self.num_train_views}views"
        ns_train = str(Path(sys.executable).parent / "ns-train")
        first = min(self.num_scenes)
        # the basis that Micro-Macro fits against: learned with the scenes of the smallest collection
        learn = f"basis-n{first}"
        args = ns_train_args(self.common, "latent-triplane-small", learn, self.steps, first, data, [], cars)
        run_timed(RunSpec(learn, [ns_train, *args], threads=2), self.common.output_dir / f"{learn}.log")
        basis = self.common.output_dir / "runs" / learn / "latent-triplane-small" / "run" / "basis"
        methods = {
            "micro-macro": ("latent-triplane-small", ["--pipeline.model.basis-checkpoint", str(basis)]),
            "triplane-rgb": ("triplane-rgb", baseline_size_args()),
        }
        rows = []
        for label, (method, model) in methods.items():
            for n in sorted(self.num_scenes):
                name = f"{label}-n{n}"
                args = ns_train_args(self.common, method, name, self.steps, n, data, model, cars)
                timed = run_timed(RunSpec(name, [ns_train, *args], threads=2), self.common.output_dir / f"{name}.log")
                folder = self.common.output_dir / "runs" / name / method / "run" / "nerfstudio_models"
                (checkpoint,) = sorted(folder.glob("step-*.ckpt"))
                rows.append(
                    {
                        "method": label,
                        "num_scenes": n,
                        "peak_rss_mib": timed["peak_rss_gib"] * 1024,
                        "checkpoint_mib": checkpoint.stat().st_size / 2**20,
                    }
                )
                CONSOLE.print(rows[-1])
        report = ScalingReport({"memory against N": rows, "memory per scene": per_scene_memory(rows)})
        _, md = report.write(self.common.output_dir / "memory")
        CONSOLE.print(md.read_text())


@dataclass
class Steps:
    """The cost of each kind of training step of latent-triplane-small, timed in this process on one collection of
    procedural cars: a ray step, a decoder step as the preset makes it, and decoder steps with one thing changed
    (window side, views per step, bf16 autocast, channels-last convolutions, only the decoder's last up-block
    trained), and the preset's decoder step once more at the end, to show how much the machine drifted. Each row: the
    median of `steps` steps after `warmup` (forward, backward and update)."""

    output_dir: Path = Path("outputs/scaling")
    """Where steps/scaling.json and .md go, and the collection (data/)."""
    autoencoder: Path = Path("shipped")
    """Autoencoder folder, or `shipped`."""
    num_scenes: int = 5
    """Scenes of the collection."""
    image_size: int = 128
    """Side of the generated images."""
    steps: int = 10
    """Timed steps per row."""
    warmup: int = 3
    """Untimed steps before them."""
    threads: int = 2
    """Torch threads."""

    def main(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        data = self.output_dir / "data" / f"cars-{self.image_size}px"
        rows: List[dict] = []
        variants = [
            ("ray step", {}, "plain", False),
            ("decoder step (preset)", {}, "plain", True),
            ("decoder step, window 8", {"decoder_patch_size": 8}, "plain", True),
            ("decoder step, window 32", {"decoder_patch_size": 32}, "plain", True),
            ("decoder step, 2 views", {"decoder_views_per_step": 2}, "plain", True),
            ("decoder step, 8 views", {"decoder_views_per_step": 8}, "plain", True),
            ("decoder step, bf16 autocast", {}, "bf16", True),
            ("decoder step, channels-last", {}, "channels_last", True),
            ("decoder step, last up-block only", {"decoder_trainable": "last_block"}, "plain", True),
            ("decoder step (preset), again", {}, "plain", True),
        ]
        for label, model, variant, decoder in variants:
            seconds = step_seconds(
                data,
                self.num_scenes,
                self.image_size,
                self.autoencoder,
                self.output_dir / "runs",
                model,
                variant,
                decoder,
                self.warmup,
                self.steps,
            )
            rows.append({"step": label, "median_seconds": seconds})
            rows[-1]["relative_to_ray_step"] = seconds / rows[0]["median_seconds"]
            rows[-1]["relative_to_preset_decoder_step"] = seconds / rows[min(1, len(rows) - 1)]["median_seconds"]
            CONSOLE.print(rows[-1])
        _, md = ScalingReport({"cost of each kind of step": rows}).write(self.output_dir / "steps")
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
        Annotated[Memory, tyro.conf.subcommand("memory")],
        Annotated[Steps, tyro.conf.subcommand("steps")],
    ]
    tyro.cli(command).main()  # type: ignore[call-overload]


if __name__ == "__main__":
    entrypoint()
