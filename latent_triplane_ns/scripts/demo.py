"""`ltn-demo`: the README's main job on the embedded procedural cars, as the nerfstudio commands a user types."""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
import tyro
from rich.console import Console
from rich.table import Table

from latent_triplane_ns.procedural import generate_collection

CONSOLE = Console()


def _bin(name: str) -> str:
    """A console script of this environment (the ns-* commands live beside the Python executable)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run(command: List[str]) -> float:
    """Runs one command as a user would type it, echoing it first; returns its wall time in seconds."""
    CONSOLE.print(f"[bold cyan]$ {shlex.join(command)}")
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


@dataclass
class Demo:
    """Generate procedural cars, train the autoencoder, learn all scenes with latent-triplane, evaluate, render."""

    output_dir: Path = Path("outputs/demo")
    """Where the autoencoder, the nerfstudio run, the evaluation and the video go."""
    data: Path = Path("data/procedural-cars")
    """Where the generated collection is written (kept and reused)."""
    num_scenes: int = 10
    """Scenes learned together in one run."""
    ae_minutes: float = 10.0
    """Budget of the one-off autoencoder training (reused on later runs while its folder exists)."""
    method: str = "latent-triplane-small"
    """Registered method that learns the scenes."""
    max_num_iterations: Optional[int] = None
    """Training steps; the preset's when None."""
    video_seconds: float = 3.0
    """Length of the rendered spiral video."""

    def main(self) -> None:
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        generate_collection(self.data, num_scenes=self.num_scenes)
        timings["generate"] = time.perf_counter() - start
        ae_dir = self.output_dir / "autoencoder"
        if not (ae_dir / "config.json").is_file():
            timings["autoencoder"] = run(
                [_bin("ltn-train-ae"), "--data", str(self.data), "--output-dir", str(ae_dir),
                 "--training.max-minutes", str(self.ae_minutes)]
            )
        device = [] if torch.cuda.is_available() else ["--machine.device-type", "cpu"]
        steps = [] if self.max_num_iterations is None else ["--max-num-iterations", str(self.max_num_iterations)]
        timings["train"] = run(
            [_bin("ns-train"), self.method, *device, *steps, "--vis", "tensorboard",
             "--output-dir", str(self.output_dir), "--experiment-name", "cars", "--timestamp", "latest",
             "--pipeline.model.autoencoder.pretrained-path", str(ae_dir),
             "scene-collection", "--data", str(self.data)]
        )
        peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        config = self.output_dir / "cars" / self.method / "latest" / "config.yml"
        eval_file = self.output_dir / "eval.json"
        timings["eval"] = run([_bin("ns-eval"), "--load-config", str(config), "--output-path", str(eval_file)])
        video = self.output_dir / "spiral.mp4"
        timings["render"] = run(
            [_bin("ns-render"), "spiral", "--load-config", str(config), "--output-path", str(video),
             "--seconds", str(self.video_seconds)]
        )
        results = json.loads(eval_file.read_text())["results"]
        table = Table(title=f"{self.method} on {self.num_scenes} procedural cars (held-out views, decoded RGB)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("mean PSNR (dB)", f"{results['psnr']:.2f}")
        table.add_row("mean SSIM", f"{results['ssim']:.3f}")
        table.add_row("autoencoder reconstruction PSNR (dB), the ceiling", f"{results['ae_psnr']:.2f}")
        for name, seconds in timings.items():
            table.add_row(f"{name} wall time (s)", f"{seconds:.0f}")
        table.add_row("peak memory of the heaviest step (GiB RSS)", f"{peak_rss_gib:.2f}")
        CONSOLE.print(table)
        summary = {"results": results, "timings_s": timings, "peak_rss_gib": peak_rss_gib, "video": str(video)}
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        CONSOLE.print(f"Per-scene figures: {eval_file}; video: {video}; viewer: ns-viewer --load-config {config}")


def entrypoint() -> None:
    tyro.cli(Demo).main()


if __name__ == "__main__":
    entrypoint()
