"""How training cost grows with the collection: the field's step at N scenes, real stage-2 runs at several N,
scene-parallel ranks against threads, memory per scene, and the cost of each kind of training step. Every figure is
measured in this process or in child commands it starts, one at a time; nothing else should run on the machine
meanwhile."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Tuple

import psutil
import torch
import torch.nn.functional as F

from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField
from latent_triplane_ns.optimizers import SceneSparseAdam
from latent_triplane_ns.scene_batches import SceneSchedule, ray_shares


@dataclass
class FieldSizes:
    """Sizes of the synthetic field of the micro-benchmark."""

    resolution: int
    """Plane side."""
    micro_features: int
    """F_mic."""
    macro_features: int
    """F_mac."""
    num_basis: int
    """M."""
    rays: int
    """Rays per step."""
    samples: int
    """Samples per ray."""

    @classmethod
    def of_method(cls, method: str = "latent-triplane-small") -> FieldSizes:
        """The sizes of a registered method's preset (by default the CPU preset)."""
        from latent_triplane_ns.benchmark.config import preset_config

        pipeline = preset_config(method).pipeline
        model = pipeline.model
        return cls(
            resolution=model.plane_resolution,
            micro_features=model.micro_features,
            macro_features=model.macro_features,
            num_basis=model.num_basis,
            rays=pipeline.datamanager.train_num_rays_per_batch,
            samples=model.num_coarse_samples + model.num_importance_samples,
        )


def field_step_seconds(
    num_scenes: int, scenes_per_batch: int, sizes: FieldSizes, steps: int = 8, warmup: int = 2
) -> Dict[str, float]:
    """Mean seconds of one step of the field alone (forward, backward, the optimisers' update) at `num_scenes`
    scenes, with rays from `scenes_per_batch` scenes per step (0: uniform over every scene), on random planes."""
    torch.manual_seed(0)
    planes = MicroMacroTriplanes(
        num_scenes, sizes.resolution, sizes.micro_features, sizes.macro_features, sizes.num_basis
    )
    field_ = TriplaneField(planes, out_channels=4, implementation="torch")
    per_scene = SceneSparseAdam([planes.micro, planes.weights], lr=1e-2)
    shared = torch.optim.Adam([planes.basis, *field_.mlp.parameters()], lr=1e-2, eps=1e-15)
    schedule = SceneSchedule(num_scenes, scenes_per_batch, torch.Generator().manual_seed(0))
    seconds, distinct = [], []
    for step in range(warmup + steps):
        if scenes_per_batch > 0:
            chosen = schedule.next()
            scene = chosen.repeat_interleave(ray_shares(sizes.rays, len(chosen)))
        else:
            scene = torch.randint(0, num_scenes, (sizes.rays,))
        positions = torch.rand(sizes.rays, sizes.samples, 3) * 2 - 1
        target = torch.rand(sizes.rays, sizes.samples, 4)
        start = time.perf_counter()
        out = field_(positions, scene)
        loss = F.mse_loss(out["colors"], target) + out["density"].mean()
        per_scene.zero_grad(set_to_none=True)
        shared.zero_grad(set_to_none=True)
        loss.backward()
        per_scene.step()
        shared.step()
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
            distinct.append(len(torch.unique(scene)))
    return {
        "num_scenes": num_scenes,
        "scenes_per_batch": scenes_per_batch,
        "seconds_per_step": sum(seconds) / len(seconds),
        "distinct_scenes_per_step": sum(distinct) / len(distinct),
    }


def field_curve(num_scenes: List[int], scenes_per_batch: List[int], sizes: FieldSizes) -> List[Dict[str, float]]:
    """`field_step_seconds` for every (N, scenes per batch), on one thread."""
    torch.set_num_threads(1)
    return [field_step_seconds(n, k, sizes) for k in scenes_per_batch for n in num_scenes]


@dataclass
class RunSpec:
    """One training command run as a child process, timed from its start to its exit."""

    name: str
    """Row name."""
    command: List[str]
    """The command line."""
    threads: int
    """OMP_NUM_THREADS of every process it starts."""


def run_timed(spec: RunSpec, log: Path) -> Dict[str, float]:
    """Runs a command, polling the peak resident memory of each of its processes; wall seconds and the peak of the
    largest process (a rank, under torchrun)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec.threads), HF_HUB_OFFLINE="1")
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(spec.command, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak: Dict[int, int] = {}
        parent = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                for child in [parent, *parent.children(recursive=True)]:
                    peak[child.pid] = max(peak.get(child.pid, 0), child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.5)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{spec.name}: exit {process.returncode}; see {log}")
    return {"seconds": seconds, "peak_rss_gib": max(peak.values(), default=0) / 2**30}


def torchrun(nproc: int, args: List[str]) -> List[str]:
    """The scene-parallel launch of ns-train arguments on `nproc` local ranks."""
    runner = str(Path(sys.executable).parent / "torchrun")
    return [runner, "--standalone", "--nproc-per-node", str(nproc), "-m", "latent_triplane_ns.distributed", *args]


@dataclass
class ScalingReport:
    """Rows of every measurement, written as JSON and as a Markdown table."""

    rows: Dict[str, List[Dict]] = field(default_factory=dict)

    def write(self, folder: Path) -> Tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        json_path, md_path = folder / "scaling.json", folder / "scaling.md"
        json_path.write_text(json.dumps(self.rows, indent=2))
        lines = []
        for section, rows in self.rows.items():
            if not rows:
                continue
            keys = list(rows[0])
            lines += [f"### {section}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            for row in rows:
                lines.append("| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
            lines.append("")
        md_path.write_text("\n".join(lines))
        return json_path, md_path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def baseline_size_args() -> List[str]:
    """ns-train flags giving triplane-rgb latent-triplane-small's field, as the benchmark compares them: the same plane
    side, MLP and samples, and F_mic + F_mac per-scene features."""
    from latent_triplane_ns.benchmark.config import FieldSizes as ComparedSizes

    sizes = ComparedSizes.of_method("latent-triplane-small")
    flags = {
        "plane-resolution": sizes.plane_resolution,
        "micro-features": sizes.num_features,
        "mlp-hidden-width": sizes.mlp_hidden_width,
        "num-coarse-samples": sizes.num_coarse_samples,
        "num-importance-samples": sizes.num_importance_samples,
    }
    return [item for key, value in flags.items() for item in (f"--pipeline.model.{key}", str(value))]


def per_scene_memory(rows: List[dict]) -> List[dict]:
    """Each method's growth per added scene, from its smallest to its largest collection, and its ratio to the
    first method's (the baseline: triplane-rgb when it is listed).

    Examples:
        >>> rows = [dict(method="rgb", num_scenes=10, peak_rss_mib=100.0, checkpoint_mib=2.0),
        ...         dict(method="rgb", num_scenes=110, peak_rss_mib=300.0, checkpoint_mib=12.0),
        ...         dict(method="mm", num_scenes=10, peak_rss_mib=150.0, checkpoint_mib=9.0),
        ...         dict(method="mm", num_scenes=110, peak_rss_mib=200.0, checkpoint_mib=12.0)]
        >>> [(r["method"], r["rss_kib_per_scene"], r["checkpoint_kib_per_scene"]) for r in per_scene_memory(rows)]
        [('rgb', 2048.0, 102.4), ('mm', 512.0, 30.72)]
        >>> [(r["rss_ratio"], r["checkpoint_ratio"]) for r in per_scene_memory(rows)]
        [(1.0, 1.0), (0.25, 0.3)]
    """
    methods = sorted(
        {r["method"] for r in rows}, key=lambda m: (m != "triplane-rgb", [r["method"] for r in rows].index(m))
    )
    out = []
    for method in methods:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["num_scenes"])
        small, large = mine[0], mine[-1]
        added = large["num_scenes"] - small["num_scenes"]
        out.append(
            {
                "method": method,
                "scenes_added": added,
                "rss_kib_per_scene": (large["peak_rss_mib"] - small["peak_rss_mib"]) * 1024 / added,
                "checkpoint_kib_per_scene": (large["checkpoint_mib"] - small["checkpoint_mib"]) * 1024 / added,
            }
        )
    for row in out:
        row["rss_ratio"] = row["rss_kib_per_scene"] / out[0]["rss_kib_per_scene"]
        row["checkpoint_ratio"] = row["checkpoint_kib_per_scene"] / out[0]["checkpoint_kib_per_scene"]
    return out


StepVariant = Literal["plain", "bf16", "channels_last"]
"""How a step's computation is changed: not at all, bf16 autocast, or channels-last convolutions."""


def step_seconds(
    data: Path,
    num_scenes: int,
    image_size: int,
    autoencoder: Path,
    output_dir: Path,
    model: Dict[str, object],
    variant: StepVariant,
    decoder: bool,
    warmup: int,
    steps: int,
) -> float:
    """The median seconds of `steps` training steps (after `warmup`) of latent-triplane-small on `num_scenes`
    procedural cars at `image_size` px in `data`, with `autoencoder` and the model settings `model`: ray steps, or
    with `decoder` decoder steps, under `variant` (bf16 autocast or channels-last convolutions)."""
    from nerfstudio.configs.method_configs import all_methods

    from latent_triplane_ns.dataparsers.procedural import ProceduralCarsDataParserConfig
    from latent_triplane_ns.shipped import resolve_autoencoder_folder

    config = copy.deepcopy(all_methods["latent-triplane-small"])
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = output_dir
    config.logging.local_writer.enable = False
    config.timestamp = "steps"
    config.pipeline.datamanager.dataparser = ProceduralCarsDataParserConfig(
        data=data, num_scenes=num_scenes, image_size=image_size
    )
    m = config.pipeline.model
    m.autoencoder.source = "pretrained"
    m.autoencoder.pretrained_path = resolve_autoencoder_folder(autoencoder)
    for key, value in model.items():
        setattr(m, key, value)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline, optimizers = trainer.pipeline, trainer.optimizers
    vae = pipeline.model.autoencoder.vae
    if variant == "channels_last":
        vae.to(memory_format=torch.channels_last)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else contextlib.nullcontext
    first = pipeline.model.first_decoder_step if decoder else 0
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizers.zero_grad_all()
        with autocast():
            _, loss_dict, _ = pipeline.get_train_loss_dict(step=first + i)
            loss = sum(loss_dict.values())
        loss.backward()
        optimizers.optimizer_step_all()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)
