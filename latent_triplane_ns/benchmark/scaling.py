"""How training cost grows with the collection: the field's step at N scenes, real stage-2 runs at several N, and
scene-parallel ranks against threads. Every figure is measured in this process or in child commands it starts, one
at a time; nothing else should run on the machine meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

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
