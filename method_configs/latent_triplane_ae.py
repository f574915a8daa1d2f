"""Presets of `latent-triplane-ae`, the 3D-aware autoencoder stage that writes a basis checkpoint."""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from latent_triplane_ns.ae_model import LatentTriplaneAEModelConfig
from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.optimizers import SceneSparseAdamOptimizerConfig
from latent_triplane_ns.pipeline import LatentAEPipelineConfig
from latent_triplane_ns.trainer import LatentTrainer
from method_configs.latent_triplane import CPU_FIELD


def _ae_trainer(method_name: str, model: LatentTriplaneAEModelConfig, rays: int, joint_steps: int) -> TrainerConfig:
    # Learning rates of the warm-up and fit phases; the joint phase scales them by model.joint_lr_scale.
    # No schedulers: the phase callback sets each group's rate.
    optimizers = {
        "micro_planes": {"optimizer": SceneSparseAdamOptimizerConfig(lr=1e-2), "scheduler": None},
        "basis_weights": {"optimizer": SceneSparseAdamOptimizerConfig(lr=1e-2), "scheduler": None},
        "basis": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
        "mlp": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
        "encoder": {"optimizer": AdamOptimizerConfig(lr=2e-3), "scheduler": None},
        "decoder": {"optimizer": AdamOptimizerConfig(lr=2e-3), "scheduler": None},
    }
    return TrainerConfig(
        _target=LatentTrainer,
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_eval_all_images=100_000,
        steps_per_save=1000,
        max_num_iterations=model.ae_warmup_steps + model.fit_steps + joint_steps,
        mixed_precision=False,
        pipeline=LatentAEPipelineConfig(
            datamanager=LatentDataManagerConfig(
                train_num_rays_per_batch=rays,
                eval_num_rays_per_batch=rays,
                cache_latents_on_disk=False,  # the encoder changes during the run
                crop_to_autoencoder=False,
            ),
            model=model,
        ),
        optimizers=optimizers,
        viewer=ViewerConfig(num_rays_per_chunk=1 << 14),
        vis="viewer",
    )


# The paper's sizes (64x64 planes, F_mic=10 + F_mac=22, M=50, 48+48 samples) with a warm-up of the compact AE.
latent_triplane_ae = MethodSpecification(
    config=_ae_trainer(
        "latent-triplane-ae",
        LatentTriplaneAEModelConfig(ae_warmup_steps=10000, fit_steps=10000, views_per_step=16),
        rays=8192,
        joint_steps=10000,
    ),
    description="3D-aware autoencoder stage: AE warm-up, scene fitting, then AE and scenes jointly; writes a basis.",
)

# Sized for a 2-core CPU with latent-triplane-small's field; give a pretrained AE (ltn-train-ae) to skip
# the warm-up.
latent_triplane_ae_small = MethodSpecification(
    config=_ae_trainer(
        "latent-triplane-ae-small",
        LatentTriplaneAEModelConfig(ae_warmup_steps=1500, fit_steps=1500, views_per_step=4, **CPU_FIELD),
        rays=1024,
        joint_steps=500,
    ),
    description="latent-triplane-ae sized for a CPU (32x32 planes, M=8, 24+24 samples).",
)
