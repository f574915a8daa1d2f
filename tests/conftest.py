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


def tiny_autoencoder_config(**architecture):
    """A 'compact' AutoencoderConfig of the toy preset's architecture (entries of `architecture` override it)."""
    from dataclasses import replace

    from latent_triplane_ns.autoencoder import AutoencoderConfig
    from latent_triplane_ns.benchmark.config import TOY_AUTOENCODER

    return AutoencoderConfig(source="compact", compact=replace(TOY_AUTOENCODER, **architecture))


def tiny_settings(compact_autoencoder: bool) -> dict:
    """The tests' tiny run, as ns-train flags and their values (the toy benchmark preset's plane side, samples, rays
    and autoencoder): one definition for the runs made in this process and on a command line."""
    from latent_triplane_ns.benchmark.config import TOY_AUTOENCODER, TOY_RAYS, TOY_SIZES

    settings = {
        "pipeline.datamanager.train-num-rays-per-batch": TOY_RAYS,
        "pipeline.datamanager.eval-num-rays-per-batch": TOY_RAYS,
        "pipeline.model.plane-resolution": TOY_SIZES.plane_resolution,
        "pipeline.model.num-coarse-samples": TOY_SIZES.num_coarse_samples,
        "pipeline.model.num-importance-samples": TOY_SIZES.num_importance_samples,
        "pipeline.model.eval-num-rays-per-chunk": 1024,
    }
    if compact_autoencoder:
        settings["pipeline.model.autoencoder.source"] = "compact"
        settings["pipeline.model.autoencoder.compact.block-out-channels"] = TOY_AUTOENCODER.block_out_channels
        settings["pipeline.model.autoencoder.compact.latent-channels"] = TOY_AUTOENCODER.latent_channels
    return settings


def tiny_flags(compact_autoencoder: bool = False) -> list:
    """`tiny_settings` on an ns-train command line."""
    flags = []
    for name, value in tiny_settings(compact_autoencoder).items():
        flags += [f"--{name}", *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    return flags


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
    from latent_triplane_ns.trainer import LatentTrainerConfig

    config = copy.deepcopy(all_methods[method])
    config.output_dir = output_dir
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.machine.device_type = "cpu"
    config.mixed_precision = False
    config.max_num_iterations = steps
    if isinstance(config, LatentTrainerConfig):
        config.steps_per_scene = 0  # `steps` in all
    config.steps_per_save = steps
    config.steps_per_eval_batch = steps
    config.steps_per_eval_image = steps
    config.steps_per_eval_all_images = 10 * steps
    config.logging.local_writer.enable = False
    datamanager = config.pipeline.datamanager
    datamanager.dataparser = SceneCollectionDataParserConfig(data=data, scene_range=scene_range)
    datamanager.data = None
    m = config.pipeline.model
    if m.autoencoder.source != "identity":
        m.autoencoder = tiny_autoencoder_config()
    for name, value in tiny_settings(compact_autoencoder=False).items():
        owner, key = (config, name.split("."))
        for part in key[:-1]:
            owner = getattr(owner, part)
        setattr(owner, key[-1].replace("-", "_"), value)
    for key, value in model.items():
        setattr(m, key, value)
    return config


@pytest.fixture
def make_config():
    return reduced_config


def run_training(config, rank: int = 0):
    """Sets up nerfstudio's own Trainer on the config, trains, and returns it (config.yml saved and torch, numpy and
    random seeded from machine.seed + rank, as ns-train seeds each rank: otherwise the samplers draw from a global
    generator whose state depends on the tests run before in the same worker)."""
    from nerfstudio.scripts.train import _set_random_seed

    config.save_config()
    _set_random_seed(config.machine.seed + rank)
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
