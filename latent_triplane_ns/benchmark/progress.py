"""Rich progress bars and progress lines of a benchmark run, fed by the training processes' progress events."""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict


class StageProgress:
    """Rich progress bars (the whole run, with the ETA from the plan, and the current stage) and the lines a person
    reads on the standard output as the run goes: one when a stage begins and one when it ends (with its seconds),
    one per curve point, and the stage's status after `quiet_seconds` without a line.

    Args:
        plan: planned seconds of each stage.
        enabled: show the bars (the lines are printed either way).
        quiet_seconds: longest time without a line while a stage runs.
    """

    def __init__(self, plan: Dict[str, float], enabled: bool = True, quiet_seconds: float = 60.0):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.plan = plan
        self.done_seconds = 0.0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            # pinned to the terminal: output of an in-process training run is redirected to its log
            console=Console(file=sys.stdout),
            disable=not enabled,
        )
        self.total = self.progress.add_task("benchmark", total=sum(plan.values()), status="")
        self.stage = None
        self.stage_name = ""
        self.quiet_seconds = quiet_seconds
        self.stage_start = self.last_line = time.perf_counter()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def begin(self, name: str, description: str, total: float) -> None:
        self.stage_name = name
        self.stage = self.progress.add_task(description, total=max(total, 1e-6), status="")
        planned = self.plan.get(name)
        self.say(f"{name}: begins, {description}" + (f"; about {planned:.0f} s planned" if planned else ""))
        self.stage_start = time.perf_counter()

    def update(self, completed: float, status: str = "") -> None:
        task = self.progress.tasks[self.stage]
        completed = min(completed, task.total)
        self.progress.update(self.stage, completed=completed, status=status)
        self.progress.update(
            self.total, completed=self.done_seconds + self.plan.get(self.stage_name, 0) * completed / task.total
        )
        if status and time.perf_counter() - self.last_line >= self.quiet_seconds:
            self.say(f"{self.stage_name}: {' '.join(status.split())} ({time.perf_counter() - self.stage_start:.0f} s)")

    def point(self, name: str, train_seconds: float, step: int, psnr: float) -> None:
        """Prints a curve point: a held-out evaluation of a training run."""
        self.say(f"{name}: {train_seconds:.1f} s of training, step {step}: held-out PSNR {psnr:.2f} dB")

    def say(self, line: str) -> None:
        """Prints a line above the bars (through the bars' console, so that the two do not garble each other)."""
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.last_line = time.perf_counter()

    def skip(self, name: str) -> None:
        """Counts a stage reused from an earlier run as done."""
        self.done_seconds += self.plan.get(name, 0)
        self.progress.update(self.total, completed=self.done_seconds)

    def end(self) -> None:
        task = self.progress.tasks[self.stage]
        self.progress.update(self.stage, completed=task.total)
        self.done_seconds += self.plan.get(self.stage_name, 0)
        self.progress.update(self.total, completed=self.done_seconds)
        self.say(f"{self.stage_name}: ends after {time.perf_counter() - self.stage_start:.1f} s")


def job_progress(progress: StageProgress) -> Callable[[Dict], None]:
    """Relays a training process's events to the stage's progress bar, and its curve points to the lines."""
    state = {"psnr": float("nan"), "phase": "setting up", "step": "-"}

    def on_event(event: Dict) -> None:
        if event["event"] == "eval":
            state["psnr"] = event["psnr"]
            progress.point(event.get("name", progress.stage_name), event["train_seconds"], event["step"], event["psnr"])
        if event["event"] in ("setup", "train", "decoder", "final_eval", "render"):
            state["phase"] = {
                "setup": "setting up",
                "train": "training",
                "decoder": "training with the decoder",
                "final_eval": "final evaluation",
                "render": "timing renders",
            }[event["event"]]
        seconds = event.get("train_seconds")
        state["step"] = event.get("step", state["step"])
        status = f"{state['phase']}  step {state['step']}  held-out PSNR {state['psnr']:.2f} dB"
        if seconds is not None:
            progress.update(seconds, status)
        else:
            progress.update(progress.progress.tasks[progress.stage].completed, status)

    return on_event
