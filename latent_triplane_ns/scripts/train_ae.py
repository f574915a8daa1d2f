"""`ltn-train-ae`: train the compact AutoencoderKL on a scene collection's images (the one-off AE warm-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple

import torch
import tyro
from nerfstudio.data.datasets.base_dataset import InputDataset
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from latent_triplane_ns.ae_training import (
    AETrainingConfig,
    latent_statistics,
    reconstruction_psnr,
    save_trained_autoencoder,
    train_autoencoder,
)
from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig


def load_collection_images(
    data: Path, split: Literal["train", "test"], scene_range: Optional[Tuple[int, int]] = None
) -> torch.Tensor:
    """All images of a collection split as (N, 3, H, W) in [0, 1], background composited."""
    parser = SceneCollectionDataParserConfig(data=data, scene_range=scene_range).setup()
    dataset = InputDataset(parser.get_dataparser_outputs(split=split))
    return torch.stack([dataset.get_image_float32(i)[..., :3] for i in range(len(dataset))]).permute(0, 3, 1, 2)


@dataclass
class TrainAutoencoder:
    """Train the compact AutoencoderKL from scratch on a collection and write it as a local pretrained folder."""

    data: Path
    """Scene collection (folder of blender/nerfstudio scene folders) whose training images it learns from."""
    output_dir: Path = Path("outputs/autoencoder")
    """Where the AutoencoderKL is written (diffusers layout, plus latent statistics and the training curve)."""
    scene_range: Optional[Tuple[int, int]] = None
    """[start, stop) of the sorted scene folders to use; all when None."""
    training: AETrainingConfig = field(default_factory=AETrainingConfig)
    """Architecture, recipe and budget."""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """Torch device."""

    def main(self) -> None:
        train = load_collection_images(self.data, "train", self.scene_range)
        held_out = load_collection_images(self.data, "test", self.scene_range)
        budget = self.training.max_minutes * 60
        with Progress(
            TextColumn("[bold green]Training autoencoder"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as progress:
            task = progress.add_task("ae", total=budget, status="")
            last = {"eval_psnr": float("nan")}

            def show(record):
                last.update({k: v for k, v in record.items() if k == "eval_psnr"})
                status = (
                    f"step {record['step']}  train {record['train_psnr']:.2f} dB  held-out {last['eval_psnr']:.2f} dB"
                )
                progress.update(task, completed=min(record["seconds"], budget), status=status)

            vae, result = train_autoencoder(self.training, train, held_out, self.device, on_progress=show)
        stats = latent_statistics(vae, train)
        log = {
            "data": self.data.name,
            "num_train_images": int(train.shape[0]),
            "num_eval_images": int(held_out.shape[0]),
            "eval_psnr": result.eval_psnr,
            "train_psnr": reconstruction_psnr(vae, train[:: max(1, train.shape[0] // 200)]),
            "steps": result.steps,
            "seconds": result.seconds,
            "parameters": sum(p.numel() for p in vae.parameters()),
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.training).items()},
            "curve": result.curve,
        }
        save_trained_autoencoder(vae, self.output_dir, stats, log)
        print(json.dumps({k: log[k] for k in ("eval_psnr", "train_psnr", "steps", "seconds", "parameters")}))
        print(f"Autoencoder written to {self.output_dir}")


def entrypoint() -> None:
    tyro.cli(TrainAutoencoder).main()


if __name__ == "__main__":
    entrypoint()
