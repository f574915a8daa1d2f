"""Presets of the `latent-triplane` and `triplane-rgb` methods."""

from __future__ import annotations

from typing import Dict

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.plugins.types import MethodSpecification

from latent_triplane_ns.autoencoder import AutoencoderConfig
from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.ffmpeg import ensure_ffmpeg
from latent_triplane_ns.model import LatentTriplaneModelConfig
from latent_triplane_ns.optimizers import PlainFloatExponentialDecaySchedulerConfig, SceneSparseAdamOptimizerConfig
from latent_triplane_ns.pipeline import LatentPipelineConfig
from latent_triplane_ns.quiet import silence_harmless_warnings
from latent_triplane_ns.trainer import LatentTrainerConfig

# Every ns-* command loads these presets through the entry points: `ns-render` then finds an ffmpeg even on a
# machine without a system one, and the warnings known to be harmless stay off the user's screen.
ensure_ffmpeg()
silence_harmless_warnings()


CPU_FIELD = dict(
    plane_resolution=32,
    micro_features=8,
    macro_features=16,
    num_basis=8,
    mlp_hidden_width=64,
    num_coarse_samples=24,
    num_importance_samples=24,
    eval_num_rays_per_chunk=1 << 13,
)
"""Field sizes of the CPU presets (latent-triplane-small, latent-triplane-ae-small): one definition, so that a basis
written by the one always fits the other."""


def _optimizers(lr: float, max_steps: int) -> Dict[str, Dict]:
    """Per-scene groups use SceneSparseAdam (absent scenes do not move); shared groups plain Adam. The paper uses
    1e-2 everywhere; the decay ends at 5% of it, as the paper's exploitation schedule does."""

    def scheduler():
        return PlainFloatExponentialDecaySchedulerConfig(lr_final=lr * 0.05, max_steps=max_steps)

    return {
        "micro_planes": {"optimizer": SceneSparseAdamOptimizerConfig(lr=lr), "scheduler": scheduler()},
        "basis_weights": {"optimizer": SceneSparseAdamOptimizerConfig(lr=lr), "scheduler": scheduler()},
        # Only with background 'learned': each scene's background latent.
        "backgrounds": {"optimizer": SceneSparseAdamOptimizerConfig(lr=lr), "scheduler": scheduler()},
        "basis": {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler()},
        "mlp": {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler()},
        # Only with decoder steps (model.ray_steps set): the shared decoder, tuned higher than the paper's 1e-4 for its
        # autoencoder (docs/experiments.md).
        "decoder": {"optimizer": AdamOptimizerConfig(lr=1e-3), "scheduler": None},
    }


def _trainer(
    method_name: str, pipeline: LatentPipelineConfig, max_steps: int, lr: float, steps_per_scene: int = 0
) -> LatentTrainerConfig:
    return LatentTrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_eval_all_images=max_steps,
        steps_per_save=1000,
        max_num_iterations=max_steps,
        steps_per_scene=steps_per_scene,
        mixed_precision=False,
        pipeline=pipeline,
        # the trainer sets the decay's horizon to the run's total steps
        optimizers=_optimizers(lr, max_steps),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 14),
        vis="viewer",
    )


# The paper's sizes (ShapeNet cars, 128 px, GPU): 64x64 planes, F_mic=10 + F_mac=22, M=50, 48+48 samples,
# batches of 32 latent views (32 x 16 x 16 rays); the CPU preset's schedule: ray steps first, then decoder steps.
latent_triplane = MethodSpecification(
    config=_trainer(
        "latent-triplane",
        LatentPipelineConfig(
            datamanager=LatentDataManagerConfig(train_num_rays_per_batch=8192, eval_num_rays_per_batch=8192),
            model=LatentTriplaneModelConfig(ray_steps=5000),
        ),
        max_steps=30000,
        lr=1e-2,
    ),
    description="Micro-Macro Tri-Planes learned in an autoencoder's latent space, many scenes in one run.",
)

# Sized for a 2-core CPU: smaller planes and fewer samples; 10 ray steps per scene give the planes a first fit, the
# decoder steps after them train the planes and the shared decoder on decoded 16x16 latent windows. Both counts are
# per scene, so a run of S scenes trains 120 x S steps: 10 x S ray steps, then 110 x S decoder steps.
latent_triplane_small = MethodSpecification(
    config=_trainer(
        "latent-triplane-small",
        LatentPipelineConfig(
            datamanager=LatentDataManagerConfig(train_num_rays_per_batch=1024, eval_num_rays_per_batch=1024),
            model=LatentTriplaneModelConfig(**CPU_FIELD, ray_steps=0, ray_steps_per_scene=10),
        ),
        max_steps=0,
        lr=1e-2,
        steps_per_scene=120,
    ),
    description="latent-triplane sized for a CPU: 32x32 planes, M=8, 24+24 samples, 120 steps per scene: 10 ray steps "
    "per scene, then decoder steps.",
)

# The paper's RGB baseline: the same field, sampler, renderer and MLP on RGB rays at full resolution, 32 per-scene
# features, no sharing.
triplane_rgb = MethodSpecification(
    config=_trainer(
        "triplane-rgb",
        LatentPipelineConfig(
            datamanager=LatentDataManagerConfig(
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
                # views without alpha on a plain backdrop get one keyed from it, and then random backgrounds too
                key_border=True,
            ),
            model=LatentTriplaneModelConfig(
                autoencoder=AutoencoderConfig(source="identity"),
                ray_steps=None,
                micro_features=32,
                macro_features=0,
                num_basis=0,
                # nerfstudio's random background for views with alpha or a keyed backdrop (other scenes: their border
                # colour), measured against a fixed background in docs/experiments.md
                background="random",
            ),
        ),
        max_steps=30000,
        lr=3e-2,  # tuned against 1e-2 and 3e-3 on 128 px cars at equal rays (docs/experiments.md)
    ),
    description="RGB Tri-Planes at full resolution, one plane set per scene: the baseline of latent-triplane.",
)
