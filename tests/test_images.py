"""Image files decoded with their real mode, and a damaged one refused by name before training."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from latent_triplane_ns.images import ImageFileError, read_rgb_uint8


def test_palette_16_bit_and_grey_images_decode_to_their_colours(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0: red, index 1: blue
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "palette.png"), [[[255, 0, 0], [0, 0, 255]]])

    deep = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257: mid-grey on 16 bits
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "deep.png")[0, :, 0], [0, 128, 255])  # not wrapped mod 256

    Image.fromarray(np.array([[10, 200]], dtype=np.uint8), "L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "grey.png"), [[[10] * 3, [200] * 3]])
    grey_alpha = Image.fromarray(np.array([[[10, 0], [200, 255]]], dtype=np.uint8), "LA")
    grey_alpha.save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "la.png"), [[[10, 10, 10, 0], [200, 200, 200, 255]]])


def test_a_truncated_image_is_refused_by_name(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match=r"a\.png: cannot be decoded as an image"):
        read_rgb_uint8(tmp_path / "a.png")


def test_the_datamanager_refuses_a_truncated_image_before_training(tiny_collection, tmp_path):
    from latent_triplane_ns.datamanager import CACHE_DIRNAME, LatentDataManagerConfig
    from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig

    data = shutil.copytree(tiny_collection, tmp_path / "cars", ignore=shutil.ignore_patterns(CACHE_DIRNAME))
    victim = data / "scene_00001" / "train" / "r_3.png"
    victim.write_bytes(victim.read_bytes()[:200])  # the header survives: sizes still read from it
    config = LatentDataManagerConfig(dataparser=SceneCollectionDataParserConfig(data=data, scene_range=(0, 2)))
    with pytest.raises(ImageFileError, match=r"scene_00001/train/r_3\.png: cannot be decoded"):
        config.setup(device="cpu")
