"""Masks: read from transforms.json's mask_path, checked by name before training, brought to the latent grid, and
masked pixels leave the loss and its gradient unchanged; views without alpha generated over a backdrop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reduced_config
from PIL import Image

from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.images import ImageFileError
from latent_triplane_ns.masks import latent_mask, masked_mse
from latent_triplane_ns.scene_io import CollectionError, MissingFileError


def parse(data: Path):
    return SceneCollectionDataParserConfig(data=data).setup().get_dataparser_outputs("train")


def add_masks(scene: Path, keep_left: int) -> None:
    """Gives every frame of a blender scene a mask that keeps the `keep_left` leftmost columns."""
    for split in ("train", "test"):
        path = scene / f"transforms_{split}.json"
        meta = json.loads(path.read_text())
        for i, frame in enumerate(meta["frames"]):
            size = Image.open(scene / (frame["file_path"] + ".png")).size
            mask = np.zeros((size[1], size[0]), dtype=np.uint8)
            mask[:, :keep_left] = 255
            name = f"masks/{split}_{i}.png"
            (scene / "masks").mkdir(exist_ok=True)
            Image.fromarray(mask).save(scene / name)
            frame["mask_path"] = name
        path.write_text(json.dumps(meta))


@pytest.fixture
def masked_collection(tiny_collection, tmp_path) -> Path:
    root = tmp_path / "masked"
    shutil.copytree(tiny_collection, root)
    for scene in sorted(root.glob("scene_*")):
        add_masks(scene, keep_left=16)
    return root


def test_masked_pixels_leave_the_loss_and_its_gradient_unchanged():
    torch.manual_seed(0)
    pred = torch.rand(6, 4, requires_grad=True)
    target = torch.rand(6, 4)
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.5]).view(6, 1)
    loss = masked_mse(pred, target, weight)
    # by hand: the weighted squared errors over the weighted count of values
    expected = ((pred - target) ** 2 * weight).sum() / (weight.sum() * 4)
    assert float(loss) == pytest.approx(float(expected))
    (grad,) = torch.autograd.grad(loss, pred)
    changed = target.clone()
    changed[[2, 4]] = 100.0  # the masked-out pixels' targets change completely
    loss2 = masked_mse(pred, changed, weight)
    (grad2,) = torch.autograd.grad(loss2, pred)
    assert float(loss2) == float(loss) and torch.equal(grad, grad2)
    assert torch.equal(grad[[2, 4]], torch.zeros(2, 4))
    assert float(masked_mse(pred, target, None)) == pytest.approx(float(((pred - target) ** 2).mean()))


def test_masks_on_the_latent_grid_by_hand():
    mask = torch.zeros(1, 4, 8, 1)
    mask[0, :2, :3] = 1.0  # top-left 2 x 3 pixels count
    got = latent_mask(mask, 4)
    assert got.shape == (1, 1, 2, 1) and got.view(-1).tolist() == [6 / 16, 0.0]


def test_masks_reach_the_batches_of_ray_and_decoder_steps(masked_collection, tmp_path):
    outputs = parse(masked_collection)
    assert len(outputs.mask_filenames) == len(outputs.image_filenames)
    config = reduced_config(
        "latent-triplane-small", masked_collection, tmp_path, steps=2, ray_steps=1, ray_steps_per_scene=0
    )
    pipeline = config.pipeline.setup(device="cpu")
    datamanager = pipeline.datamanager
    f = datamanager.autoencoder.downsample_factor
    mask = datamanager.cached_train["mask"]
    assert mask.shape == (*datamanager.cached_train["latents"].shape[:3], 1)
    # the left 16 of 32 columns count: whole latent columns in, whole columns out
    columns = mask[0, 0, :, 0]
    assert torch.equal(columns, (torch.arange(32 // f) < 16 // f).float())
    _, batch = datamanager.next_train(0)
    x = batch["indices"][:, 2]
    assert torch.equal(batch["mask"].view(-1), (x < 16 // f).float())
    _, views = datamanager.next_train_views(2, patch=None)
    assert views["image_mask"].shape == (*views["image"].shape[:3], 1)
    assert torch.equal(views["image_mask"][0, 0, :, 0], (torch.arange(32) < 16).float())
    loss_dict = pipeline.get_train_loss_dict(step=1)[1]  # a decoder step with masks
    assert torch.isfinite(loss_dict["dec_loss"])


def test_bad_masks_are_refused_by_name(tiny_collection, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(tiny_collection, root)
    scene = sorted(root.glob("scene_*"))[0]
    add_masks(scene, keep_left=16)
    with pytest.raises(CollectionError, match="give masks for every scene of a collection or for none"):
        parse(root)
    for other in sorted(root.glob("scene_*"))[1:]:
        add_masks(other, keep_left=16)
    mask = scene / "masks" / "train_0.png"
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(mask)
    with pytest.raises(ImageFileError, match=rf"{mask}: the mask is 16x16, its image 32x32"):
        parse(root)
    mask.write_bytes(b"not an image")
    with pytest.raises(ImageFileError, match=rf"{mask}: cannot be decoded as a mask image"):
        parse(root)
    mask.unlink()
    with pytest.raises(MissingFileError, match=rf"{mask}: mask file does not exist"):
        parse(root)
    path = scene / "transforms_train.json"
    meta = json.loads(path.read_text())
    del meta["frames"][1]["mask_path"]
    path.write_text(json.dumps(meta))
    with pytest.raises(CollectionError, match=rf"{path}: frame './train/r_1' has no mask_path"):
        parse(root)


def test_a_backdrop_gives_views_without_alpha_that_the_border_estimate_reads(tmp_path):
    from latent_triplane_ns.backgrounds import read_borders
    from latent_triplane_ns.procedural import generate_collection
    from latent_triplane_ns.procedural.collection import backdrop_colors

    root = tmp_path / "blue"
    kw = dict(num_scenes=2, seed=3, image_size=32, num_train_views=3, num_test_views=1, workers=1, show_progress=False)
    generate_collection(root, backdrop="color", **kw)
    view = root / "scene_00001" / "train" / "r_0.jpg"
    assert Image.open(view).mode == "RGB" and not (root / "scene_00001" / "train" / "r_0.png").exists()
    assert json.loads((root / "collection.json").read_text())["backdrop"] == "color"
    assert generate_collection(root, backdrop="color", **kw).num_generated == 0  # complete: kept
    outputs = parse(root)
    from nerfstudio.data.datasets.base_dataset import InputDataset

    borders = read_borders(InputDataset(outputs), outputs.cameras.metadata["scene_index"].view(-1), torch.ones(3))
    expected = torch.tensor(np.stack([backdrop_colors(3, 0)[0], backdrop_colors(3, 1)[0]]), dtype=torch.float32)
    assert torch.allclose(borders.colors, expected, atol=3 / 255)  # JPG keeps a flat colour within a few levels
    assert borders.opaque.all() and (borders.uniform == 1.0).all()
    with pytest.raises(CollectionError, match="backdrop"):  # the folder holds another backdrop's views
        generate_collection(root, **kw)


def test_srn_masks_are_read_from_the_mask_folder_and_checked_by_name(tmp_path):
    from latent_triplane_ns.dataparsers.srn import SrnCollectionDataParserConfig
    from latent_triplane_ns.procedural import generate_collection

    root = tmp_path / "srn"
    kw = dict(num_scenes=2, seed=3, image_size=32, num_train_views=3, num_test_views=1, workers=1, show_progress=False)
    generate_collection(root, fmt="srn", **kw)

    def parse_srn():
        return SrnCollectionDataParserConfig(data=root, num_test_views=1).setup().get_dataparser_outputs("train")

    assert parse_srn().mask_filenames is None
    scenes = sorted(root.glob("scene_*"))
    for scene in scenes:
        (scene / "mask").mkdir()
        for image in (scene / "rgb").iterdir():
            mask = np.zeros((32, 32), dtype=np.uint8)
            mask[:, :8] = 255
            Image.fromarray(mask).save(scene / "mask" / f"{image.stem}.png")
    outputs = parse_srn()
    assert [m.stem for m in outputs.mask_filenames] == [p.stem for p in outputs.image_filenames]
    assert [m.parent.name for m in outputs.mask_filenames] == ["mask"] * len(outputs.image_filenames)
    missing = scenes[1] / "mask" / f"{outputs.image_filenames[-1].stem}.png"
    missing.unlink()
    with pytest.raises(MissingFileError, match=rf"{missing}: mask file does not exist"):
        parse_srn()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(missing)
    with pytest.raises(ImageFileError, match=rf"{missing}: the mask is 16x16, its image 32x32"):
        parse_srn()
    shutil.rmtree(scenes[1] / "mask")
    with pytest.raises(CollectionError, match="give masks for every scene of a collection or for none"):
        parse_srn()
