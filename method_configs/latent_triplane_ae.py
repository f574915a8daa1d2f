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


def _ae_trainer(method_name: str, model: LatentTriplaneAEModelConfig, rays: int, decoder_steps: int) -> TrainerConfig:
    # Learning rates of the warm-up and fit phases; the joint phase scales them by model.joint_lr_scale.
    # No schedulers: the phase callback sets each group's rate.
    optimizers = {
        "micro_planes": {"optimizer": SceneSparseAdamOptimizerConfig(lr=1e-2), "scheduler": None},
        "basis_weights": {"optimizer": SceneSparseAdamOptimizerConfig(lr=1e-2), "scheduler": None},
        "backgrounds": {"optimizer": SceneSparseAdamOptimizerConfig(lr=1e-2), "scheduler": None},
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
        # the decoder phase takes the steps after the fit and the joint phase
        max_num_iterations=(model.ray_steps or 0) + model.joint_steps + decoder_steps,
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


# Both start from the shipped autoencoder: the fit, then the decoder phase; the joint phase (--pipeline.model.joint-steps)
# is off, since it cost the autoencoder its reconstruction (docs/experiments.md). A compact autoencoder from scratch
# (--pipeline.model.autoencoder.source compact) adds its warm-up: raise --max-num-iterations by ae_warmup_steps.

# The paper's sizes (64x64 planes, F_mic=10 + F_mac=22, M=50, 48+48 samples).
latent_triplane_ae = MethodSpecification(
    config=_ae_trainer(
        "latent-triplane-ae",
        LatentTriplaneAEModelConfig(ae_warmup_steps=10000, ray_steps=10000, views_per_step=16),
        rays=8192,
        decoder_steps=4000,
    ),
    description="Stage 1: the basis, fitted to the autoencoder's latents, then its decoder tuned on renders; writes a basis.",
)

# Sized for a 2-core CPU with latent-triplane-small's field.
latent_triplane_ae_small = MethodSpecification(
    config=_ae_trainer(
        "latent-triplane-ae-small",
        LatentTriplaneAEModelConfig(ae_warmup_steps=1500, ray_steps=800, views_per_step=4, **CPU_FIELD),
        rays=1024,
        decoder_steps=300,
    ),
    description="latent-triplane-ae sized for a CPU (32x32 planes, M=8, 24+24 samples): 800 fit + 300 decoder steps.",
)
