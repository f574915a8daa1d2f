"""`ltn-train-ae`: train the compact autoencoder on a scene collection's images (the one-off AE warm-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import torch
import tyro
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from latent_triplane_ns.ae_training import AETrainingConfig, progress_status, train_and_save_autoencoder
from latent_triplane_ns.quiet import silence_harmless_warnings


@dataclass
class TrainAutoencoder:
    """Train the compact autoencoder from scratch on a collection and write it as a local pretrained folder."""

    data: Tuple[Path, ...]
    """Scene collections (folders of blender/nerfstudio scene folders) whose training images it learns from: one, or
    several of one image size (one per object family, say), learnt together."""
    output_dir: Path = Path("outputs/autoencoder")
    """Where the autoencoder is written (diffusers layout, plus latent statistics and the training curve). An
    existing folder is replaced only if an earlier `ltn-train-ae` wrote it. While training, checkpoints go to
    `<output-dir>.partial` beside it: rerunning the same command after a kill resumes from the latest one."""
    scene_range: Optional[Tuple[int, int]] = None
    """[start, stop) of the sorted scene folders of each collection to use; all when None."""
    training: AETrainingConfig = field(default_factory=AETrainingConfig)
    """Architecture, recipe and budget."""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """Torch device."""
    start_over: bool = False
    """Discard the unfinished run in `<output-dir>.partial` and train from step 0, instead of resuming it (a rerun
    with other settings or images is refused without this flag)."""

    def main(self) -> None:
        budget = self.training.max_minutes * 60
        with Progress(
            TextColumn("[bold green]Training autoencoder"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as progress:
            task = progress.add_task("ae", total=budget, status="")

            def show(record):
                progress.update(task, completed=min(record["seconds"], budget), status=progress_status(record))
                if record["evaluated"] and not progress.console.is_terminal:
                    # no bar is drawn into a log file: a line per held-out measurement instead
                    progress.console.print(f"autoencoder {record['seconds']:.0f} s  {progress_status(record)}")

            log = train_and_save_autoencoder(
                self.training,
                list(self.data),
                self.output_dir,
                self.scene_range,
                self.device,
                on_progress=show,
                start_over=self.start_over,
                # in a terminal and in a log file alike
                on_message=lambda line: progress.console.print(line, markup=False, highlight=False),
            )
        print(json.dumps({k: log[k] for k in ("eval_psnr", "train_psnr", "steps", "seconds", "parameters", "resumed")}))
        print(f"Autoencoder written to {self.output_dir}")


def entrypoint() -> None:
    silence_harmless_warnings()
    tyro.cli(TrainAutoencoder).main()


if __name__ == "__main__":
    entrypoint()
