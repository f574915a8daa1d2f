"""`ltn-demo`: the README's main job on the embedded procedural cars, as the nerfstudio commands a user types."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

import torch
import tyro
from rich.console import Console
from rich.table import Table

from latent_triplane_ns.ae_training import describe_training, read_training_summary
from latent_triplane_ns.procedural import generate_collection
from latent_triplane_ns.quiet import python_warnings_option, silence_harmless_warnings

CONSOLE = Console()


def _bin(name: str) -> str:
    """A console script of this environment (the ns-* commands live beside the Python executable)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run(command: List[str]) -> float:
    """Runs one command as a user would type it, echoing it first; returns its wall time in seconds."""
    CONSOLE.print(f"[bold cyan]$ {shlex.join(command)}")
    start = time.perf_counter()
    # Each command's imports of nerfstudio warn before the plugin is loaded: the harmless ones are filtered here.
    filters = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), python_warnings_option()]))
    returncode = subprocess.run(command, env={**os.environ, "PYTHONWARNINGS": filters}).returncode
    if returncode != 0:
        CONSOLE.print(f"[bold red]{Path(command[0]).name} failed (exit code {returncode}); its message is above.")
        sys.exit(returncode)
    return time.perf_counter() - start


@dataclass
class Demo:
    """The paper's flow on procedural cars: the autoencoder (shipped, or trained here), stage 1 (3D-aware AE + basis,
    fine-tuning the autoencoder) on a collection, stage 2 (new scenes learned against the basis), then evaluation, a
    video and a contact sheet."""

    output_dir: Path = Path("outputs/demo")
    """Where the autoencoder, the nerfstudio runs, the evaluation and the video go."""
    data: Path = Path("data/procedural-cars")
    """Where the generated collection is written (kept and reused)."""
    basis_scenes: int = 10
    """Scenes of the stage-1 collection (the basis is learned on them)."""
    new_scenes: int = 5
    """New scenes learned in stage 2 against the basis, all in one run."""
    autoencoder: Literal["shipped", "train"] = "shipped"
    """Autoencoder that stage 1 starts from and fine-tunes: 'shipped', the one inside the package (a one-off cost paid
    when it was made, reported with the results); 'train', one trained here on the basis scenes by ltn-train-ae."""
    ae_minutes: float = 8.0
    """Budget of the autoencoder training with --autoencoder train (reused on later runs while its folder exists)."""
    stage1_fit_steps: int = 800
    """Stage-1 steps with the autoencoder frozen."""
    stage1_joint_steps: int = 0
    """Stage-1 steps training autoencoder, basis and scenes jointly (0: the autoencoder stays frozen). 0 by default:
    200 joint steps took the shipped autoencoder's reconstruction of the new cars from 31.7 to 20.2 dB, and stage 2's
    decoded views at its step 500 to 19.2 dB (the README's "A sharper autoencoder needs stage 1 without its joint
    phase")."""
    stage1_decoder_steps: int = 300
    """The last stage-1 steps, which fine-tune the shared decoder on the basis scenes' rendered views (the encoder
    frozen): stage 2 then starts from a decoder that has learned to decode rendered latents (0: none)."""
    stage2_steps: int = 600
    """Stage-2 steps on the new scenes."""
    stage2_decoder_steps: int = 500
    """The last stage-2 steps, which also fine-tune the shared decoder on rendered views (0: the decoder stays as
    stage 1 left it). The 100 ray steps before them are cheap and bring the fit near their plateau."""
    decoder_patch: Optional[int] = 16
    """Side, in latent pixels, of the random window of each view that the decoder steps of both stages render and
    decode; None: whole views (four times the work at the shipped autoencoder's 32 latent pixels)."""
    video_seconds: float = 3.0
    """Length of the rendered spiral video."""

    def main(self) -> None:
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        generate_collection(self.data, num_scenes=self.basis_scenes + self.new_scenes)
        timings["generate"] = time.perf_counter() - start
        basis_range = ["--scene-range", "0", str(self.basis_scenes)]
        new_range = ["--scene-range", str(self.basis_scenes), str(self.basis_scenes + self.new_scenes)]
        if self.autoencoder == "shipped":
            from latent_triplane_ns.shipped import SHIPPED_NAME, shipped_autoencoder_dir

            ae_dir = shipped_autoencoder_dir()
            ae_name = f"shipped {SHIPPED_NAME}"
        else:
            ae_dir = self.output_dir / "autoencoder"
            ae_name = f"trained here ({ae_dir})"
        if self.autoencoder == "train" and not (ae_dir / "config.json").is_file():
            timings["autoencoder"] = run(
                [
                    _bin("ltn-train-ae"),
                    "--data",
                    str(self.data),
                    *basis_range,
                    "--output-dir",
                    str(ae_dir),
                    "--training.max-minutes",
                    str(self.ae_minutes),
                ]
            )
        patch = [] if self.decoder_patch is None else ["--pipeline.model.decoder-patch-size", str(self.decoder_patch)]
        common = [
            *([] if torch.cuda.is_available() else ["--machine.device-type", "cpu"]),
            "--vis",
            "tensorboard",
            "--output-dir",
            str(self.output_dir),
            "--timestamp",
            "latest",
        ]
        timings["stage1"] = run(
            [
                _bin("ns-train"),
                "latent-triplane-ae-small",
                *common,
                "--experiment-name",
                "stage1",
                "--max-num-iterations",
                str(self.stage1_fit_steps + self.stage1_joint_steps + self.stage1_decoder_steps),
                "--pipeline.model.fit-steps",
                str(self.stage1_fit_steps),
                "--pipeline.model.decoder-steps",
                str(self.stage1_decoder_steps),
                *patch,
                *(
                    ["--pipeline.model.autoencoder.source", "shipped"]
                    if self.autoencoder == "shipped"
                    else ["--pipeline.model.autoencoder.source", "pretrained"]
                    + ["--pipeline.model.autoencoder.pretrained-path", str(ae_dir)]
                ),
                "scene-collection",
                "--data",
                str(self.data),
                *basis_range,
            ]
        )
        basis = self.output_dir / "stage1" / "latent-triplane-ae-small" / "latest" / "basis"
        timings["stage2"] = run(
            [
                _bin("ns-train"),
                "latent-triplane-small",
                *common,
                "--experiment-name",
                "stage2",
                "--max-num-iterations",
                str(self.stage2_steps),
                "--pipeline.model.basis-checkpoint",
                str(basis),
                "--pipeline.model.decoder-steps",
                str(self.stage2_decoder_steps),
                *patch,
                "scene-collection",
                "--data",
                str(self.data),
                *new_range,
            ]
        )
        peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        config = self.output_dir / "stage2" / "latent-triplane-small" / "latest" / "config.yml"
        eval_file = self.output_dir / "eval.json"
        timings["eval"] = run([_bin("ns-eval"), "--load-config", str(config), "--output-path", str(eval_file)])
        video = self.output_dir / "spiral.mp4"
        timings["render"] = run(
            [
                _bin("ns-render"),
                "spiral",
                "--load-config",
                str(config),
                "--output-path",
                str(video),
                "--seconds",
                str(self.video_seconds),
            ]
        )
        sheet = self.output_dir / "contact_sheet.png"
        timings["contact_sheet"] = run(
            [_bin("ltn-contact-sheet"), "--load-config", str(config), "--output-path", str(sheet), "--num-scenes", "3"]
        )
        results = json.loads(eval_file.read_text())["results"]
        table = Table(
            title=f"{self.new_scenes} new procedural cars against a basis of {self.basis_scenes} "
            "(held-out views, decoded RGB)"
        )
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("mean PSNR (dB)", f"{results['psnr']:.2f}")
        table.add_row("mean SSIM", f"{results['ssim']:.3f}")
        table.add_row("autoencoder reconstruction PSNR (dB), D(E(x))", f"{results['ae_psnr']:.2f}")
        trained = read_training_summary(ae_dir)
        table.add_row("autoencoder", ae_name)
        if trained is not None:
            table.add_row("autoencoder's one-off cost", describe_training(trained))
        for name, seconds in timings.items():
            table.add_row(f"{name} wall time (s)", f"{seconds:.0f}")
        table.add_row("peak memory of the heaviest step (GiB RSS)", f"{peak_rss_gib:.2f}")
        CONSOLE.print(table)
        summary = {
            "results": results,
            "timings_s": timings,
            "peak_rss_gib": peak_rss_gib,
            "autoencoder": {"name": ae_name, "folder": str(ae_dir), "trained": trained},
            "video": str(video),
            "contact_sheet": str(sheet),
        }
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        CONSOLE.print(
            f"Per-scene figures: {eval_file}; video: {video}; contact sheet: {sheet}; "
            f"viewer: ns-viewer --load-config {config}"
        )


def entrypoint() -> None:
    silence_harmless_warnings()
    tyro.cli(Demo).main()


if __name__ == "__main__":
    entrypoint()
