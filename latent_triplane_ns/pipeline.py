"""Pipeline that hands the model's autoencoder to the datamanager and reports evaluation per scene."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Dict, List, Optional, Type

import torch
import torchvision.utils as vutils
import yaml
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from latent_triplane_ns.ae_model import LatentTriplaneAEModel, LatentTriplaneAEModelConfig
from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.model import LatentTriplaneModelConfig


@dataclass
class LatentPipelineConfig(VanillaPipelineConfig):
    """Pipeline of the latent Tri-Plane methods."""

    _target: Type = field(default_factory=lambda: LatentPipeline)
    datamanager: LatentDataManagerConfig = field(default_factory=LatentDataManagerConfig)
    """Latent datamanager."""
    model: LatentTriplaneModelConfig = field(default_factory=LatentTriplaneModelConfig)
    """Latent Tri-Plane model."""


class LatentPipeline(VanillaPipeline):
    """VanillaPipeline whose datamanager encodes with the model's autoencoder (built once, owned by the model)."""

    config: LatentPipelineConfig

    def __init__(self, config: LatentPipelineConfig, device: str, *args, grad_scaler=None, **kwargs):
        super().__init__(config, device, *args, grad_scaler=grad_scaler, **kwargs)
        self.datamanager.set_autoencoder(self.model.autoencoder)

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        trainer = training_callback_attributes.trainer
        if trainer is not None:
            # The run's config.yml gains what rebuilds the model if its basis checkpoint or autoencoder folder moves
            # later (the model's `restore`); ns-train wrote config.yml before the model existed.
            self.model.config.restore = self.model.restore_record()
            (Path(trainer.base_dir) / "config.yml").write_text(yaml.dump(trainer.config), "utf8")
        return super().get_training_callbacks(training_callback_attributes)

    def get_train_loss_dict(self, step: int):
        self.model.check_weights_loaded()  # before any image is encoded with an autoencoder still to be loaded
        return super().get_train_loss_dict(step)

    @torch.no_grad()
    def get_average_image_metrics(
        self,
        data_loader,
        image_prefix: str,
        step: Optional[int] = None,
        output_path: Optional[Path] = None,
        get_std: bool = False,
    ) -> Dict[str, float]:
        """Mean of every metric over all images, the same per scene (`psnr/<scene>`), and render timings."""
        self.eval()
        per_image: List[Dict[str, float]] = []
        per_scene: Dict[int, List[Dict[str, float]]] = defaultdict(list)
        if output_path is not None:
            output_path.mkdir(exist_ok=True, parents=True)
        with Progress(
            TextColumn("[green]Evaluating held-out images"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("eval", total=len(data_loader))
            for idx, (camera, batch) in enumerate(data_loader):
                start = perf_counter()
                outputs = self.model.get_outputs_for_camera(camera=camera)
                seconds = perf_counter() - start
                metrics, images = self.model.get_image_metrics_and_images(outputs, batch)
                metrics["fps"] = 1.0 / seconds
                metrics["num_rays_per_sec"] = float(camera.height * camera.width) / seconds
                if output_path is not None:
                    for key, image in images.items():
                        vutils.save_image(
                            image.permute(2, 0, 1).cpu(), output_path / f"{image_prefix}_{key}_{idx:04d}.png"
                        )
                per_image.append(metrics)
                per_scene[int(batch.get("scene_index", 0))].append(metrics)
                progress.advance(task)
        self.train()
        result: Dict[str, float] = {}
        for key in per_image[0]:
            values = torch.tensor([m[key] for m in per_image])
            result[key] = float(values.mean())
            if get_std:
                result[f"{key}_std"] = float(values.std()) if len(values) > 1 else 0.0
        names = getattr(self.model, "scene_names", None) or []
        for scene, metrics in sorted(per_scene.items()):
            name = names[scene] if scene < len(names) else str(scene)
            for key in ("psnr", "ssim", "ae_psnr"):
                if key in metrics[0]:
                    result[f"{key}/{name}"] = float(sum(m[key] for m in metrics) / len(metrics))
        return result


@dataclass
class LatentAEPipelineConfig(LatentPipelineConfig):
    """Pipeline of `latent-triplane-ae`: the batch of each step depends on the training phase."""

    _target: Type = field(default_factory=lambda: LatentAEPipeline)
    model: LatentTriplaneAEModelConfig = field(default_factory=LatentTriplaneAEModelConfig)
    """3D-aware autoencoder model."""


class LatentAEPipeline(LatentPipeline):
    """Serves the batch of the phase: RGB images (AE warm-up), latent-pixel rays (fit), whole views (joint)."""

    config: LatentAEPipelineConfig
    model: LatentTriplaneAEModel

    def get_train_loss_dict(self, step: int):
        phase = self.model.phase_at(step)
        datamanager = self.datamanager
        if phase == "fit":
            return super().get_train_loss_dict(step)
        if phase == "warmup":
            loss_dict = self.model.warmup_loss_dict(datamanager.random_train_images(self.config.model.ae_batch_size))
            metrics = {"ae_train_psnr": -10.0 * torch.log10(loss_dict["ae_loss"].detach().clamp_min(1e-10))}
            return {}, loss_dict, metrics
        ray_bundle, batch = datamanager.next_train_views(self.config.model.views_per_step)
        outputs = self.model(ray_bundle)
        loss_dict = self.model.joint_loss_dict(outputs, batch)
        metrics = {"enc_psnr": -10.0 * torch.log10(loss_dict["enc_loss"].detach().clamp_min(1e-10))}
        return outputs, loss_dict, metrics

    def _fresh_eval_latents(self) -> None:
        # The encoder moves during the AE phases: evaluation must compare against its current latents.
        if self.model.phase in ("warmup", "joint"):
            self.datamanager.invalidate_latents()

    def get_eval_loss_dict(self, step: int):
        self._fresh_eval_latents()
        return super().get_eval_loss_dict(step)

    def get_eval_image_metrics_and_images(self, step: int):
        self._fresh_eval_latents()
        return super().get_eval_image_metrics_and_images(step)

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std=False
    ):
        self._fresh_eval_latents()
        return super().get_average_eval_image_metrics(step, output_path, get_std)
