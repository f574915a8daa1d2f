"""`ltn-demo`: the main job on the embedded procedural cars, as the nerfstudio commands a user types."""

from __future__ import annotations

import codecs
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import torch
import tyro
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from latent_triplane_ns.ae_training import describe_training, read_training_summary
from latent_triplane_ns.procedural import generate_collection
from latent_triplane_ns.quiet import python_warnings_option, silence_harmless_warnings

CONSOLE = Console()


def _bin(name: str) -> str:
    """A console script of this environment (the ns-* commands live beside the Python executable)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


POLL_SECONDS = 0.5
"""How often a logged command's output is read for its progress."""
QUIET_SECONDS = 60.0
"""Longest time a logged command runs without a line on the terminal (a 'still running' line then)."""
FAILURE_TAIL_LINES = 30
"""Lines of a failed command's log printed on the terminal."""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# nerfstudio's trainer prints `Step (% Done)` rows: "440 (40.00%)   <stats>", redrawn with cursor movements.
_STEP = re.compile(r"^\s*(\d+) \((\d+(?:\.\d+)?)%\)", re.MULTILINE)


def plain_text(text: str) -> str:
    """Terminal output as plain lines: escape sequences removed, and of a line redrawn with carriage returns only
    what was drawn last."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in _ANSI.sub("", text).split("\n"))


def latest_progress(text: str) -> Optional[Tuple[int, float]]:
    """(step, percent done) of the last `Step (% Done)` row of nerfstudio's training output in `text`; None: none."""
    rows = _STEP.findall(plain_text(text))
    return (int(rows[-1][0]), float(rows[-1][1])) if rows else None


def log_tail(log_file: Path, lines: int = FAILURE_TAIL_LINES) -> List[str]:
    """The last `lines` non-blank lines of a command's log, as plain text."""
    text = plain_text(Path(log_file).read_text(errors="replace"))
    return [line for line in text.splitlines() if line.strip()][-lines:]


class _ProgressLines:
    """The lines a logged command gets on the terminal while it runs: its training progress at every tenth of the
    steps (nerfstudio's `Step (% Done)`), and a 'still running' line after QUIET_SECONDS without one."""

    def __init__(self, stage: str, start: float):
        self.stage, self.start, self.last_line = stage, start, time.perf_counter()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""
        self.latest: Optional[Tuple[int, float]] = None
        self.tenths_shown = 0

    def feed(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + self.decoder.decode(data)).split("\n")
        found = latest_progress("\n".join(lines))
        if found is None:
            return
        self.latest = found
        tenths = int(found[1] // 10)
        if tenths > self.tenths_shown and found[1] < 100:
            self.tenths_shown = tenths
            self.say(f"step {found[0]} ({found[1]:.0f}% done)")

    def tick(self) -> None:
        if time.perf_counter() - self.last_line >= QUIET_SECONDS:
            latest = "" if self.latest is None else f" (last: step {self.latest[0]}, {self.latest[1]:.0f}% done)"
            self.say(f"still running{latest}")

    def say(self, text: str) -> None:
        CONSOLE.print(
            f"  {self.stage}: {text}, {time.perf_counter() - self.start:.0f} s", markup=False, highlight=False
        )
        self.last_line = time.perf_counter()


def _run_logged(command: List[str], stage: str, log_file: Path, env: Dict[str, str], start: float) -> int:
    """Runs a command with its stdout and stderr into `log_file`, printing its progress lines; its exit code."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    CONSOLE.print(f"{stage}: started; its output goes to {log_file}", markup=False, highlight=False, soft_wrap=True)
    lines = _ProgressLines(stage, start)
    with open(log_file, "wb") as log, open(log_file, "rb") as reader:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                finished = process.poll() is not None  # before the read, so that it reads the whole output
                lines.feed(reader.read())
                if finished:
                    return process.returncode
                lines.tick()
                time.sleep(POLL_SECONDS)
        finally:
            if process.poll() is None:  # interrupted (Ctrl-C): the command does not outlive the demo
                process.terminate()
                process.wait()


def run(command: List[str], stage: Optional[str] = None, log_dir: Optional[Path] = None) -> float:
    """Runs one command as a user would type it, echoing it first; returns its wall time in seconds. A command that
    fails ends this process with its exit code (128 + the signal's number for one killed by a signal).

    Args:
        command: the command line.
        stage: the stage's name in the lines printed and in its log's name (default: the command's name).
        log_dir: where the command's whole output (stdout and stderr) goes, as `<stage>.log`: the terminal gets
            a line when it starts, its progress now and then, and a line with its wall time when it ends; on a
            failure, the log's last FAILURE_TAIL_LINES lines. None: the output goes to the terminal.
    """
    stage = stage or Path(command[0]).name
    CONSOLE.print(f"$ {shlex.join(command)}", style="bold cyan", markup=False, highlight=False, soft_wrap=True)
    start = time.perf_counter()
    # Each command's imports of nerfstudio warn before the plugin is loaded: the harmless ones are filtered here.
    filters = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), python_warnings_option()]))
    env = {**os.environ, "PYTHONWARNINGS": filters}
    if log_dir is None:
        log_file = None
        returncode = subprocess.run(command, env=env).returncode
    else:
        log_file = Path(log_dir) / f"{stage}.log"
        returncode = _run_logged(command, stage, log_file, {**env, "PYTHONUNBUFFERED": "1"}, start)
    seconds = time.perf_counter() - start
    if returncode != 0:
        if log_file is None:
            CONSOLE.print(f"[bold red]{escape(stage)} failed (exit code {returncode}); its message is above.")
        else:
            tail = log_tail(log_file)
            CONSOLE.print(
                f"--- the last {len(tail)} lines of {log_file} ---", markup=False, highlight=False, soft_wrap=True
            )
            for line in tail:
                CONSOLE.print(line, markup=False, highlight=False, soft_wrap=True)
            CONSOLE.print(
                f"[bold red]{escape(stage)} failed after {seconds:.0f} s (exit code {returncode})[/]; its whole "
                f"output: {escape(str(log_file))}",
                soft_wrap=True,
            )
        sys.exit(returncode if returncode > 0 else 128 - returncode)
    if log_file is not None:
        CONSOLE.print(
            f"{stage}: done in {seconds:.0f} s; output: {log_file}", markup=False, highlight=False, soft_wrap=True
        )
    return seconds


@dataclass
class Demo:
    """The paper's flow on procedural cars, as the registered presets do it: the autoencoder (shipped, or trained
    here), stage 1 (`latent-triplane-ae-small`: the basis and the decoder phase) on a collection, stage 2
    (`latent-triplane-small`: new scenes learned against the basis), then evaluation, a video and a contact sheet.
    Only the data, the device and the output folders are passed to the presets."""

    output_dir: Path = Path("outputs/demo")
    """Where the autoencoder, the nerfstudio runs, the evaluation and the video go."""
    data: Path = Path("data/demo-cars")
    """Where the generated cars are written (kept and reused): the basis scenes in `basis/`, the new ones in `new/`."""
    basis_scenes: int = 10
    """Scenes 0..N-1, the stage-1 collection (the basis is learned on them)."""
    new_scenes: int = 5
    """Scenes N..N+K-1, new scenes learned in stage 2 against the basis, all in one run."""
    autoencoder: Literal["shipped", "train"] = "shipped"
    """Autoencoder that stage 1 starts from and fine-tunes: 'shipped', the one inside the package (a one-off cost paid
    when it was made, reported with the results); 'train', one trained here on the basis scenes by ltn-train-ae."""
    ae_minutes: float = 8.0
    """Budget of the autoencoder training with --autoencoder train (reused on later runs while its folder exists)."""
    video_seconds: float = 3.0
    """Length of the rendered spiral video."""

    def main(self) -> None:
        timings: Dict[str, float] = {}
        logs = self.output_dir / "logs"  # each command's whole output, as <stage>.log
        start = time.perf_counter()
        basis_data, new_data = self.data / "basis", self.data / "new"
        generate_collection(basis_data, num_scenes=self.basis_scenes)
        generate_collection(new_data, num_scenes=self.new_scenes, first_scene=self.basis_scenes)
        timings["generate"] = time.perf_counter() - start
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
                    str(basis_data),
                    "--output-dir",
                    str(ae_dir),
                    "--training.max-minutes",
                    str(self.ae_minutes),
                ],
                stage="autoencoder",
                log_dir=logs,
            )
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
                *(
                    []
                    if self.autoencoder == "shipped"
                    else ["--pipeline.model.autoencoder.source", "pretrained"]
                    + ["--pipeline.model.autoencoder.pretrained-path", str(ae_dir)]
                ),
                "--data",
                str(basis_data),
            ],
            stage="stage1",
            log_dir=logs,
        )
        basis = self.output_dir / "stage1" / "latent-triplane-ae-small" / "latest" / "basis"
        timings["stage2"] = run(
            [
                _bin("ns-train"),
                "latent-triplane-small",
                *common,
                "--experiment-name",
                "stage2",
                "--pipeline.model.basis-checkpoint",
                str(basis),
                "--data",
                str(new_data),
            ],
            stage="stage2",
            log_dir=logs,
        )
        peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        config = self.output_dir / "stage2" / "latent-triplane-small" / "latest" / "config.yml"
        eval_file = self.output_dir / "eval.json"
        timings["eval"] = run(
            [_bin("ns-eval"), "--load-config", str(config), "--output-path", str(eval_file)],
            stage="eval",
            log_dir=logs,
        )
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
            ],
            stage="render",
            log_dir=logs,
        )
        sheet = self.output_dir / "contact_sheet.png"
        timings["contact_sheet"] = run(
            [_bin("ltn-contact-sheet"), "--load-config", str(config), "--output-path", str(sheet), "--num-scenes", "3"],
            stage="contact_sheet",
            log_dir=logs,
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
