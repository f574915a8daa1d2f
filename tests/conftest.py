"""Shared fixtures: a tiny generated collection and reduced training configs (CPU, offline, seconds)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread: on 2 cores shared with anything else, OpenMP's spinning threads make two threads many times slower.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

TINY_ARCHITECTURE = dict(block_out_channels=(8, 8, 8, 8), latent_channels=4)
"""An 8x-downsampling compact AutoencoderKL small enough to encode in milliseconds."""


def tiny_autoencoder_config(**architecture):
    """A 'compact' AutoencoderConfig of the tiny architecture (entries of `architecture` override it)."""
    from latent_triplane_ns.autoencoder import AutoencoderConfig, CompactAEConfig

    return AutoencoderConfig(source="compact", compact=CompactAEConfig(**{**TINY_ARCHITECTURE, **architecture}))


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory) -> Path:
    """Four procedural car scenes, 32 px, 6 training and 2 held-out views each."""
    from latent_triplane_ns.procedural import generate_collection

    root = tmp_path_factory.mktemp("collection") / "cars"
    generate_collection(
        root, num_scenes=4, seed=3, image_size=32, num_train_views=6, num_test_views=2, workers=1, show_progress=False
    )
    return root


def reduced_config(method: str, data: Path, output_dir: Path, steps: int = 40, scene_range=(0, 2), **model):
    """A registered method's TrainerConfig made cheap: CPU, tiny planes and AE, few rays and samples."""
    from nerfstudio.configs.method_configs import all_methods

    from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig

    config = copy.deepcopy(all_methods[method])
    config.output_dir = output_dir
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.machine.device_type = "cpu"
    config.mixed_precision = False
    config.max_num_iterations = steps
    config.steps_per_save = steps
    config.steps_per_eval_batch = steps
    config.steps_per_eval_image = steps
    config.steps_per_eval_all_images = 10 * steps
    config.logging.local_writer.enable = False
    datamanager = config.pipeline.datamanager
    datamanager.dataparser = SceneCollectionDataParserConfig(data=data, scene_range=scene_range)
    datamanager.data = None
    datamanager.train_num_rays_per_batch = 256
    datamanager.eval_num_rays_per_batch = 256
    m = config.pipeline.model
    if m.autoencoder.source != "identity":
        m.autoencoder = tiny_autoencoder_config()
    m.plane_resolution = 16
    m.num_coarse_samples = 16
    m.num_importance_samples = 16
    m.eval_num_rays_per_chunk = 1024
    for key, value in model.items():
        setattr(m, key, value)
    return config


@pytest.fixture
def make_config():
    return reduced_config


def run_training(config):
    """Sets up nerfstudio's own Trainer on the config, trains, and returns it (config.yml saved, as ns-train does)."""
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    return trainer


def fixed_batch_loss(pipeline) -> float:
    """The latent loss of one fixed, seeded training batch, for comparing a pipeline before and after training."""
    torch.manual_seed(0)
    pipeline.datamanager._rng.manual_seed(0)
    with torch.no_grad():
        _, loss_dict, _ = pipeline.get_train_loss_dict(step=0)
    return float(loss_dict["latent_loss"])
