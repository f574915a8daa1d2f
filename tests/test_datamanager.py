"""Latent datamanager: latent-resolution cameras, disk cache hit and miss, batches."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import tiny_autoencoder_config

from latent_triplane_ns.autoencoder import LatentAutoencoder
from latent_triplane_ns.datamanager import CACHE_DIRNAME, LatentDataManagerConfig
from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig


def make_datamanager(data, **config):
    dm = LatentDataManagerConfig(
        dataparser=SceneCollectionDataParserConfig(data=data, scene_range=(0, 2)), **config
    ).setup(device="cpu")
    return dm


def tiny_ae(seed=0):
    torch.manual_seed(seed)
    return LatentAutoencoder(tiny_autoencoder_config())


@pytest.fixture
def collection(tiny_collection, tmp_path):
    """A private copy: the cache is written next to the data."""
    return shutil.copytree(tiny_collection, tmp_path / "cars", ignore=shutil.ignore_patterns(CACHE_DIRNAME))


def test_latent_pixel_j_covers_rgb_pixels_8j_to_8j_plus_7(collection):
    dm = make_datamanager(collection)
    dm.set_autoencoder(tiny_ae())
    full = dm.train_dataset.cameras
    latent = dm.latent_train_cameras
    assert int(latent.height[0]) == int(full.height[0]) // 8
    assert torch.allclose(latent.fx * 8, full.fx) and torch.allclose(latent.cx * 8, full.cx)
    # the ray through the centre of latent pixel (j, i) is the ray through RGB position (8j + 4, 8i + 4),
    # the centre of the 8x8 block of RGB pixels 8j..8j+7
    for j, i in [(0, 0), (1, 3), (3, 2)]:
        a = latent.generate_rays(camera_indices=torch.tensor([[2]]), coords=torch.tensor([[j + 0.5, i + 0.5]]))
        b = full.generate_rays(camera_indices=torch.tensor([[2]]), coords=torch.tensor([[8.0 * j + 4, 8.0 * i + 4]]))
        assert torch.allclose(a.directions, b.directions, atol=1e-6)
        assert torch.allclose(a.origins, b.origins)


def test_training_batch_matches_cached_latents_and_scene_index(collection):
    dm = make_datamanager(collection, train_num_rays_per_batch=64)
    dm.set_autoencoder(tiny_ae())
    rays, batch = dm.next_train(0)
    assert rays.shape == (64,) and batch["latent"].shape == (64, 4)
    image, y, x = batch["indices"].unbind(-1)
    assert torch.equal(batch["latent"], dm.cached_train["latents"][image, y, x])
    scene_of_image = dm.train_dataset.cameras.metadata["scene_index"].view(-1)
    assert torch.equal(rays.metadata["scene_index"].view(-1), scene_of_image[image])
    assert set(scene_of_image.tolist()) == {0, 1}
    # the encoded latent of an image is the autoencoder's encoding of that image
    first = dm.load_image(dm.train_dataset, 0).permute(2, 0, 1)[None]
    assert torch.allclose(dm.cached_train["latents"][0], dm.autoencoder.encode(first)[0].permute(1, 2, 0), atol=1e-6)


def test_decoder_windows_are_the_matching_pixels_of_whole_views(collection):
    dm = make_datamanager(collection)
    dm.set_autoencoder(tiny_ae())
    h, w = (int(side) for side in (dm.latent_train_cameras.height[0], dm.latent_train_cameras.width[0]))
    assert (h, w) == (4, 4)  # 32 px images, 8x autoencoder
    dm._rng.manual_seed(0)
    rays, batch = dm.next_train_views(40, patch=2)
    y, x = batch["latent_yx"]
    assert rays.shape == y.shape == x.shape == (40, 2, 2) and batch["image"].shape == (40, 16, 16, 3)
    top, left = y[:, 0, 0], x[:, 0, 0]
    # every window of 2 x 2 latent pixels is drawn, and its rows and columns are consecutive
    assert set(zip(top.tolist(), left.tolist(), strict=True)) == {(r, c) for r in range(3) for c in range(3)}
    assert torch.equal(y - top.view(-1, 1, 1), torch.tensor([[0, 0], [1, 1]]).expand(40, 2, 2))
    assert torch.equal(x - left.view(-1, 1, 1), torch.tensor([[0, 1], [0, 1]]).expand(40, 2, 2))
    whole_rays, whole = dm.next_train_views(3)
    assert whole_rays.shape == (3, 4, 4) and whole["image"].shape == (3, 32, 32, 3)
    centres = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij"), dim=-1).float() + 0.5
    for k in (0, 17, 39):
        image, r, c = int(batch["image_idx"][k]), int(top[k]), int(left[k])
        full = dm.load_image(dm.train_dataset, image)
        assert torch.equal(batch["image"][k], full[8 * r : 8 * r + 16, 8 * c : 8 * c + 16])
        # the window's rays are those of the same latent pixels of its whole view
        view = dm.latent_train_cameras.generate_rays(camera_indices=torch.full((4, 4, 1), image), coords=centres)
        assert torch.allclose(rays.directions[k], view.directions[r : r + 2, c : c + 2], atol=1e-6)
        assert torch.allclose(rays.origins[k], view.origins[r : r + 2, c : c + 2])


def test_cache_hit_encodes_nothing_and_changes_invalidate(collection, monkeypatch):
    ae = tiny_ae()
    first = make_datamanager(collection)
    first.set_autoencoder(ae)
    latents = first.cached_train["latents"].clone()
    cache_files = sorted((collection / CACHE_DIRNAME).glob("train-*.safetensors"))
    assert len(cache_files) == 1 and cache_files[0].with_suffix(".json").is_file()

    calls = []
    original = LatentAutoencoder.encode
    monkeypatch.setattr(LatentAutoencoder, "encode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    hit = make_datamanager(collection)
    hit.set_autoencoder(ae)
    assert torch.equal(hit.cached_train["latents"], latents)
    assert calls == []

    other_ae = tiny_ae(seed=1)  # other weights: a miss and a second cache file
    miss = make_datamanager(collection)
    miss.set_autoencoder(other_ae)
    _ = miss.cached_train
    assert calls and len(list((collection / CACHE_DIRNAME).glob("train-*.safetensors"))) == 2

    calls.clear()
    image_file = miss.train_dataset.image_filenames[3]
    pixels = iio.imread(image_file)
    pixels[0, 0] = (pixels[0, 0].astype(np.int16) + 1).clip(0, 255).astype(np.uint8)
    iio.imwrite(image_file, pixels)
    changed = make_datamanager(collection)
    changed.set_autoencoder(ae)
    _ = changed.cached_train
    assert calls  # a changed image re-encodes
    assert not list((collection / CACHE_DIRNAME).glob(".*.tmp"))  # nothing half-written is left


@pytest.mark.parametrize("damage", ["zero-filled", "truncated", "sidecar missing"])
def test_a_damaged_cache_entry_is_reported_and_encoded_again(collection, damage, capsys):
    ae = tiny_ae()
    first = make_datamanager(collection)
    first.set_autoencoder(ae)
    latents = first.cached_train["latents"].clone()
    (cache_file,) = (collection / CACHE_DIRNAME).glob("train-*.safetensors")
    size = cache_file.stat().st_size
    if damage == "zero-filled":
        cache_file.write_bytes(bytes(size))
    elif damage == "truncated":
        cache_file.write_bytes(cache_file.read_bytes()[: size // 2])
    else:
        cache_file.with_suffix(".json").unlink()
    again = make_datamanager(collection)
    again.set_autoencoder(ae)
    assert torch.equal(again.cached_train["latents"], latents)  # encoded again: the real latents, not zeros
    output = capsys.readouterr().out
    assert "Damaged latent cache entry" in output and "Latent cache hit" not in output
    # the entry written in its place is whole: the next run reads it
    third = make_datamanager(collection)
    third.set_autoencoder(ae)
    assert torch.equal(third.cached_train["latents"], latents)
    assert "Latent cache hit" in capsys.readouterr().out


def test_odd_image_sizes_are_cropped_or_refused(collection, tmp_path):
    from latent_triplane_ns.procedural import generate_collection

    odd = tmp_path / "odd"
    generate_collection(
        odd, num_scenes=2, image_size=36, num_train_views=2, num_test_views=1, workers=1, show_progress=False
    )
    dm = make_datamanager(odd)
    cx = dm.train_dataset.cameras.cx.clone()
    dm.set_autoencoder(tiny_ae())
    assert dm.cached_train["latents"].shape == (4, 4, 4, 4)  # 36 px cropped at the top-left to 32
    assert torch.equal(dm.train_dataset.cameras.cx, cx)  # a top-left crop keeps the principal point
    camera, batch = dm.eval_item(0)
    assert batch["image"].shape == (32, 32, 3) and int(camera.height) == 32
    with pytest.raises(ValueError, match="r_0.png: image size 36x36 is not a multiple"):
        make_datamanager(odd, crop_to_autoencoder=False).set_autoencoder(tiny_ae())
    ae64 = LatentAutoencoder(tiny_autoencoder_config(block_out_channels=(8,) * 7))
    with pytest.raises(ValueError, match="smaller than the autoencoder's factor 64"):
        make_datamanager(collection).set_autoencoder(ae64)
