"""Pipelines: the autoencoder handed to the datamanager, evaluation per scene, and stage 1's phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Type

import torch
import torchvision.utils as vutils
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from latent_triplane_ns import basis as basis_io
from latent_triplane_ns.ae_model import ENCODER_PHASES, LatentTriplaneAEModel, LatentTriplaneAEModelConfig, Phase
from latent_triplane_ns.ae_training import RECIPE_RANGE, latent_statistics
from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.distributed.sync import average_
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.evaluation import Evaluation, SceneEvaluator, psnr_from_mse
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
        backgrounds = self.model.backgrounds
        self.datamanager.set_backgrounds(
            backgrounds.colors, self.model.config.background == "random", backgrounds.palette
        )

    def get_train_loss_dict(self, step: int):
        self.model.check_weights_loaded()  # before any image is encoded with an autoencoder still to be loaded
        if not self.model.is_decoder_step(step):
            return super().get_train_loss_dict(step)
        model_config = self.config.model
        ray_bundle, batch = self.datamanager.next_train_views(
            model_config.decoder_views_per_step, model_config.decoder_patch_size
        )
        y, x = batch["latent_yx"]
        cached = self.datamanager.cached_train
        batch["latent"] = cached["latents"][batch["image_idx"].view(-1, 1, 1), y, x]
        if "mask" in cached:
            batch["mask"] = cached["mask"][batch["image_idx"].view(-1, 1, 1), y, x]
        outputs = self.model(ray_bundle)
        loss_dict = self.model.decoder_loss_dict(outputs, batch)
        metrics = {"dec_psnr": psnr_from_mse(loss_dict["dec_loss"].detach())}
        return outputs, loss_dict, metrics

    @torch.no_grad()
    def get_average_image_metrics(
        self,
        data_loader,
        image_prefix: str,
        step: Optional[int] = None,
        output_path: Optional[Path] = None,
        get_std: bool = False,
    ) -> Dict[str, float]:
        """Every metric averaged over the scenes (each scene weighs the same), the same per scene
        (`psnr/<scene>`, `ssim/<scene>`, `ae_psnr/<scene>`), and render timings. `data_loader` is the
        datamanager's held-out set (`fixed_indices_eval_dataloader`): every held-out view is evaluated."""
        evaluator = SceneEvaluator(self.model, self.datamanager, indices=range(len(data_loader)))
        if output_path is not None:
            output_path.mkdir(exist_ok=True, parents=True)
        views = []
        with Progress(
            TextColumn("[green]Evaluating held-out images"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("eval", total=len(evaluator))
            for view in evaluator.views():
                view.metrics["fps"] = 1.0 / view.seconds
                view.metrics["num_rays_per_sec"] = float(view.ground_truth.shape[0] * view.ground_truth.shape[1])
                view.metrics["num_rays_per_sec"] /= view.seconds
                if output_path is not None:
                    for key, image in view.images.items():
                        name = f"{image_prefix}_{key}_{view.index:04d}.png"
                        vutils.save_image(image.permute(2, 0, 1).cpu(), output_path / name)
                views.append(view)
                progress.advance(task)
        evaluation = Evaluation(views, list(self.model.scene_names))
        result = evaluation.means()
        if get_std:
            for key in list(result):
                values = torch.tensor([v.metrics[key] for v in views])
                result[f"{key}_std"] = float(values.std()) if len(values) > 1 else 0.0
        for name, metrics in evaluation.per_scene().items():
            for key in ("psnr", "ssim", "ae_psnr"):
                if key in metrics:
                    result[f"{key}/{name}"] = metrics[key]
        return result


@dataclass
class LatentAEPipelineConfig(LatentPipelineConfig):
    """Pipeline of `latent-triplane-ae`: the batch of each step depends on the training phase."""

    _target: Type = field(default_factory=lambda: LatentAEPipeline)
    model: LatentTriplaneAEModelConfig = field(default_factory=LatentTriplaneAEModelConfig)
    """3D-aware autoencoder model."""


class LatentAEPipeline(LatentPipeline):
    """Owns stage 1's phases: AE warm-up (RGB images), fit (latent-pixel rays, AE frozen), joint (whole views), and
    the decoder phase (stage 2's decoder steps: whole views or windows, encoder frozen).

    At each phase change it flips what trains, sets the latent normalisation from the warmed-up encoder, forgets
    latents of an encoder that moved, scales the learning rates of the joint phase, and serves the phase's batch;
    the model supplies each phase's losses.
    """

    config: LatentAEPipelineConfig
    model: LatentTriplaneAEModel

    def __init__(self, config: LatentAEPipelineConfig, device: str, *args, **kwargs):
        super().__init__(config, device, *args, **kwargs)
        planes = self.model.field.triplanes
        if planes.num_basis > planes.num_scenes:
            raise InputError(
                f"{self.datamanager.get_datapath()}: the collection has {planes.num_scenes} scenes, too few for a basis "
                f"of {planes.num_basis} plane sets: give at least {planes.num_basis} scenes, or fewer basis plane sets "
                f"with --pipeline.model.num-basis {planes.num_scenes} (or less)"
            )
        self.phase: Optional[Phase] = None
        """The phase of the last step (None before the first)."""

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        optimizers = training_callback_attributes.optimizers
        trainer = training_callback_attributes.trainer
        model = self.model
        if trainer is not None:
            self.check_phases_fit(trainer.config.max_num_iterations)

        def switch(step: int) -> None:
            phase = model.phase_at(step)
            if phase == self.phase:
                return
            if phase == "fit" and step == model.warmup_steps and model.warmup_steps > 0:
                self.normalise_latents()
            if phase == "joint" and model.phase_at(step - 1) == "fit" and trainer is not None:
                # The basis as it stands with the autoencoder frozen throughout: what the joint phase improves on.
                snapshot = Path(trainer.base_dir) / "basis_before_joint"
                basis_io.write_basis_checkpoint(self.model, snapshot, step, complete=True)
            if self.phase is None or self.phase in ENCODER_PHASES:
                self.datamanager.invalidate_latents()  # after fit or decoder phases the encoder has not moved
                self.model.backgrounds.refresh(self.model.autoencoder)
            self.model.set_trainable(phase)
            self.phase = phase
            if optimizers is not None:
                scales = {"joint": self.config.model.joint_lr_scale, "decoder": self.config.model.decoder_lr_scale}
                for name, optimizer in optimizers.optimizers.items():
                    scale = scales.get(phase, {}).get(name, 1.0)
                    for group in optimizer.param_groups:
                        group["lr"] = optimizers.config[name]["optimizer"].lr * scale

        def encode_backgrounds(step: int) -> None:
            # during the phases that train the encoder the scenes are rendered over the backgrounds' encodings from
            # the start of the phase; at the end (before the basis is written) they are encoded with the final one
            if self.phase in ENCODER_PHASES:
                self.model.backgrounds.refresh(self.model.autoencoder)

        callbacks = super().get_training_callbacks(training_callback_attributes)
        return [
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], switch),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], encode_backgrounds),
            *callbacks,
        ]

    @torch.no_grad()
    def normalise_latents(self, max_images: int = 256) -> None:
        """Sets the tanh normalisation from the warmed-up encoder's latents of (up to `max_images`, evenly spread)
        training images; in scene-parallel training, the mean of the ranks' statistics."""
        dataset = self.datamanager.train_dataset
        count = min(max_images, len(dataset))
        step = max(1, len(dataset) // count)
        images = torch.stack([self.datamanager.load_image(dataset, i) for i in range(0, step * count, step)])
        ae = self.model.autoencoder
        stats = latent_statistics(ae.vae, images.permute(0, 3, 1, 2).to(self.device))
        shift, scale = torch.tensor(stats["shift"]).to(self.device), torch.tensor(stats["scale"]).to(self.device)
        average_([shift, scale])  # in scene-parallel training, every rank normalises with the same statistics
        ae.set_statistics(shift, scale)
        self.model.backgrounds.refresh(ae, initialise=True)

    def check_phases_fit(self, max_num_iterations: int) -> None:
        """Raises when the phases before the decoder phase do not fit the run's steps (a phase would be cut short)."""
        model, config = self.model, self.config.model
        before = model.warmup_steps + (config.ray_steps or 0) + config.joint_steps
        if config.ray_steps is not None and before > max_num_iterations:
            raise InputError(
                f"the phases before the decoder phase (warm-up {model.warmup_steps}, fit {config.ray_steps}, joint "
                f"{config.joint_steps} steps) take {before} steps, more than the run's {max_num_iterations}: raise "
                f"--max-num-iterations to {before} or more"
            )

    def get_train_loss_dict(self, step: int):
        phase = self.model.phase_at(step)
        if phase in ("fit", "decoder"):
            return super().get_train_loss_dict(step)
        if phase == "warmup":
            loss_dict = self.model.warmup_loss_dict(
                self.datamanager.random_train_images(self.config.model.ae_batch_size)
            )
            metrics = {"ae_train_psnr": psnr_from_mse(loss_dict["ae_loss"].detach(), RECIPE_RANGE)}
            return {}, loss_dict, metrics
        ray_bundle, batch = self.datamanager.next_train_views(self.config.model.views_per_step)
        outputs = self.model(ray_bundle)
        loss_dict = self.model.joint_loss_dict(outputs, batch)
        metrics = {"enc_psnr": psnr_from_mse(loss_dict["enc_loss"].detach() / self.config.model.enc_loss_mult)}
        return outputs, loss_dict, metrics

    def _fresh_eval_latents(self) -> None:
        # The encoder moves during the AE phases: evaluation must compare against its current latents.
        if self.phase in ENCODER_PHASES:
            self.datamanager.invalidate_latents()
            self.model.backgrounds.refresh(self.model.autoencoder)

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
