"""ShapeNet-SRN dataparser: scene folders with ``rgb/``, ``pose/`` (OpenCV camera-to-world) and ``intrinsics.txt``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Type

import numpy as np

from latent_triplane_ns.dataparsers.collection import CollectionDataParser, CollectionDataParserConfig
from latent_triplane_ns.masks import read_mask
from latent_triplane_ns.scene_io import (
    OPENGL_FROM_OPENCV,
    CollectionError,
    MissingFileError,
    SceneSplit,
    check_image_sizes,
    check_pose,
)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class SrnCollectionDataParserConfig(CollectionDataParserConfig):
    """A collection of scenes in the ShapeNet-SRN layout, as used by SRN, pixelNeRF and the 3Da-AE paper."""

    _target: Type = field(default_factory=lambda: SrnCollection)
    data: Path = Path()
    """A folder of scene folders, or one scene folder. A scene folder holds ``rgb/*.png``, ``pose/<same stem>.txt``
    (16 numbers: the OpenCV camera-to-world matrix, x right, y down, z forward) and ``intrinsics.txt`` (line 1
    ``f cx cy 0.``, line 4 ``H W``: the image size the intrinsics are given for; they are rescaled to the actual
    image size, since some releases store 512 px intrinsics next to 128 px images). A scene folder may also hold
    ``mask/<same stem>.png`` (or .jpg), one per image: non-zero where the pixel carries a loss."""
    num_test_views: int = 10
    """The first this-many images of each scene, in file-name order, are held out; the rest are trained on."""


class SrnCollection(CollectionDataParser):
    """SRN-layout collections; see ``SrnCollectionDataParserConfig``. Poses are converted to nerfstudio's OpenGL
    convention (the camera's y and z axes are flipped)."""

    config: SrnCollectionDataParserConfig
    scene_description = "an rgb/ folder (SRN layout)"

    def is_scene(self, folder: Path) -> bool:
        return (folder / "rgb").is_dir()

    def read_split(self, scene_dir: Path, split: Literal["train", "test"]) -> SceneSplit:
        focal, cx, cy, (height0, width0) = read_intrinsics(scene_dir / "intrinsics.txt")
        rgb_dir = scene_dir / "rgb"
        images = sorted(
            p for p in rgb_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        num_test = self.config.num_test_views
        if len(images) <= num_test:
            raise CollectionError(
                f"{rgb_dir}: {len(images)} image(s), but num_test_views={num_test} leaves none for training"
            )
        images = images[:num_test] if split == "test" else images[num_test:]
        width, height = check_image_sizes(images, str(rgb_dir))
        poses = np.stack(
            [
                check_pose(read_pose(scene_dir / "pose" / f"{p.stem}.txt"), str(scene_dir / "pose" / f"{p.stem}.txt"))
                for p in images
            ]
        )
        sx, sy = width / width0, height / height0
        count = len(images)
        masks = read_masks(scene_dir, images, (width, height))
        return SceneSplit(
            image_filenames=images,
            poses=poses @ OPENGL_FROM_OPENCV,
            fx=np.full(count, focal * sx),
            fy=np.full(count, focal * sy),
            cx=np.full(count, cx * sx),
            cy=np.full(count, cy * sy),
            width=width,
            height=height,
            mask_filenames=masks,
        )


def read_masks(scene_dir: Path, images: List[Path], size: Tuple[int, int]) -> Optional[List[Path]]:
    """The masks of `images` from the scene's ``mask/`` folder (``<image stem>`` with an image suffix), each checked
    to decode at its image's size ((width, height)); None when the scene has no ``mask/`` folder."""
    mask_dir = scene_dir / "mask"
    if not mask_dir.is_dir():
        return None
    masks = []
    for image in images:
        found = [mask_dir / f"{image.stem}{suffix}" for suffix in _IMAGE_SUFFIXES]
        found = [path for path in found if path.is_file()]
        if not found:
            raise MissingFileError(
                f"{mask_dir / (image.stem + '.png')}: mask file does not exist ({mask_dir} holds masks, so every image "
                f"of {scene_dir / 'rgb'} needs one, named after it)"
            )
        read_mask(found[0], size)
        masks.append(found[0])
    return masks


def read_intrinsics(path: Path) -> Tuple[float, float, float, Tuple[int, int]]:
    """Reads an SRN ``intrinsics.txt``: returns f, cx, cy and the (height, width) they are given for."""
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        focal, cx, cy = (float(v) for v in lines[0][:3])
        height, width = (int(float(v)) for v in lines[3][:2])
    except (IndexError, ValueError):
        raise CollectionError(
            f"{path}: malformed SRN intrinsics; expected line 1 'f cx cy 0.' and line 4 'H W'"
        ) from None
    if not (np.isfinite([focal, cx, cy]).all() and focal > 0 and height > 0 and width > 0):
        raise CollectionError(f"{path}: invalid intrinsics f={focal}, cx={cx}, cy={cy}, size {height}x{width}")
    return focal, cx, cy, (height, width)


def read_pose(path: Path) -> np.ndarray:
    """Reads an SRN pose file: 16 (or 12) whitespace-separated numbers, a row-major 4x4 (or 3x4) matrix."""
    if not path.is_file():
        raise MissingFileError(f"{path}: pose file not found")
    try:
        values = np.array([float(v) for v in path.read_text().split()])
    except ValueError:
        raise CollectionError(f"{path}: pose file holds non-numeric values") from None
    if values.size not in (12, 16):
        raise CollectionError(f"{path}: pose file holds {values.size} numbers, expected 16 (a 4x4 matrix)")
    return values.reshape(-1, 4)
