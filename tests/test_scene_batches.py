"""Scene-batched sampling: each step's scenes, each scene's share of the rays, and the datamanager's batches."""

from __future__ import annotations

from collections import Counter

import torch
from conftest import tiny_autoencoder_config

from latent_triplane_ns.autoencoder import LatentAutoencoder
from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.scene_batches import SceneSchedule, ray_shares


def test_every_scene_is_visited_once_per_epoch_and_no_step_repeats_a_scene():
    schedule = SceneSchedule(num_scenes=5, per_step=2, generator=torch.Generator().manual_seed(1))
    steps = [schedule.next().tolist() for _ in range(15)]  # 30 visits: 6 epochs of 5 scenes
    assert all(len(step) == 2 and step[0] != step[1] for step in steps)
    assert Counter(s for step in steps for s in step) == {s: 6 for s in range(5)}
    # within each epoch's 5 visits (2.5 steps) every scene appears once
    flat = [s for step in steps for s in step]
    assert all(sorted(flat[i : i + 5]) == list(range(5)) for i in range(0, 30, 5))
    assert SceneSchedule(3, 8, torch.Generator()).next().sort().values.tolist() == [0, 1, 2]  # at most S per step


def test_ray_shares_are_equal_with_the_remainder_on_the_first_scenes():
    assert ray_shares(10, 3).tolist() == [4, 3, 3]
    assert ray_shares(64, 4).tolist() == [16] * 4


def test_a_training_batch_takes_equal_shares_from_the_steps_scenes(tiny_collection):
    dm = LatentDataManagerConfig(
        dataparser=SceneCollectionDataParserConfig(data=tiny_collection, scene_range=(0, 4)),
        train_num_rays_per_batch=64,
        scenes_per_batch=3,
        cache_latents_on_disk=False,
    ).setup(device="cpu")
    torch.manual_seed(0)
    dm.set_autoencoder(LatentAutoencoder(tiny_autoencoder_config()))
    scene_of_image = dm.train_dataset.cameras.metadata["scene_index"].view(-1)
    visits = Counter()
    for step in range(4):  # 12 visits: 3 epochs of the 4 scenes
        rays, batch = dm.next_train(step)
        image, y, x = batch["indices"].unbind(-1)
        scenes = rays.metadata["scene_index"].view(-1)
        assert torch.equal(scenes, scene_of_image[image])  # each ray's scene is its image's
        assert torch.equal(batch["latent"], dm.cached_train["latents"][image, y, x])
        assert sorted(Counter(scenes.tolist()).values()) == [21, 21, 22]
        visits.update(set(scenes.tolist()))
    assert visits == {s: 3 for s in range(4)}
