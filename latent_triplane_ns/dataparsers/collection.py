"""Scene-collection dataparser: many scene folders (blender or nerfstudio format) as one dataset, one index per scene."""

from __future__ import annotations

import math
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE

from latent_triplane_ns.masks import read_mask
from latent_triplane_ns.scene_io import (
    CollectionError,
    MissingFileError,
    SceneSplit,
    check_image_sizes,
    check_pose,
    check_scene_dir,
    find_scene_dirs,
    read_json,
    select_scenes,
)

NERFSTUDIO_EVAL_INTERVAL = 8
"""In a nerfstudio-format scene without ``train_filenames``/``val_filenames``/``test_filenames``, frames sorted by
``file_path`` whose position is a multiple of this are held out (the first, the 9th, ...), the rest are trained on."""

_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


@dataclass
class CollectionDataParserConfig(DataParserConfig):
    """Settings shared by the collection parsers: which scenes, and how their space is framed."""

    _target: Type = field(default_factory=lambda: CollectionDataParser)
    scenes: Tuple[str, ...] | None = None
    """Folder names of the scenes to load; all when None. Indices follow the sorted folder order."""
    scene_range: Tuple[int, int] | None = None
    """[start, stop) positions in the sorted list of scene folders, instead of names."""
    scene_box_bound: float = 1.0
    """Half-size of the axis-aligned scene box, centred at the origin, in scaled world units."""
    scale_factor: float = 1.0
    """Multiplies camera positions (the world is scaled by it); recorded as the dataparser scale."""
    alpha_color: Literal["white", "black"] = "white"
    """Background that RGBA images are composited over."""


class CollectionDataParser(DataParser):
    """Reads a folder of scene folders (or a single scene folder) into one dataset.

    Scenes are ordered by folder name (plain string order) and the selected ones get indices 0..S-1 in that order,
    the same for every split. Every image's camera carries its scene's index in ``cameras.metadata["scene_index"]``
    (long, shape (N, 1)), and ``DataparserOutputs.metadata["scene_names"]`` lists the folder names in index order.
    Subclasses read the scene folders of one on-disk layout.
    """

    config: CollectionDataParserConfig
    scene_description: str = "a scene"
    """What a scene folder holds, for error messages."""

    @abstractmethod
    def is_scene(self, folder: Path) -> bool:
        """Whether a folder holds one scene of this layout."""

    @abstractmethod
    def read_split(self, scene_dir: Path, split: Literal["train", "test"]) -> SceneSplit:
        """Reads and validates one split of one scene."""

    def scene_dirs(self) -> List[Path]:
        """The selected scene folders, in index order."""
        data = self.config.data
        found = find_scene_dirs(data, self.is_scene, self.scene_description)
        selected = select_scenes(found, data, self.config.scenes, self.config.scene_range)
        for scene_dir in selected:
            check_scene_dir(scene_dir, self.is_scene, self.scene_description)
        return selected

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Dict | None) -> DataparserOutputs:
        if split not in ("train", "val", "test"):
            raise ValueError(f"Unknown split {split!r}; expected 'train', 'val' or 'test'.")
        scene_dirs = self.scene_dirs()
        splits = [self.read_split(d, "train" if split == "train" else "test") for d in scene_dirs]
        names = [d.name or d.resolve().name for d in scene_dirs]
        return build_dataparser_outputs(splits, names, self.config)


def build_dataparser_outputs(
    splits: List[SceneSplit], scene_names: List[str], config: CollectionDataParserConfig
) -> DataparserOutputs:
    """Stacks the splits of the scenes (in index order) into nerfstudio's DataparserOutputs."""
    poses = np.concatenate([s.poses for s in splits]).astype(np.float64)
    poses[:, :3, 3] *= config.scale_factor
    scene_index = np.concatenate([np.full(len(s.image_filenames), i) for i, s in enumerate(splits)])

    def per_image(values: List[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(values).astype(np.float32))[:, None]

    sizes = [(s.width, s.height) for s in splits for _ in s.image_filenames]
    masked = [s.mask_filenames is not None for s in splits]
    if any(masked) and not all(masked):
        with_masks, without = masked.index(True), masked.index(False)
        raise CollectionError(
            f"{splits[with_masks].image_filenames[0].parent.parent}: gives masks (mask_path) and "
            f"{splits[without].image_filenames[0].parent.parent} gives none: give masks for every scene of a "
            "collection or for none"
        )
    cameras = Cameras(
        camera_to_worlds=torch.from_numpy(poses[:, :3, :4].astype(np.float32)),
        fx=per_image([s.fx for s in splits]),
        fy=per_image([s.fy for s in splits]),
        cx=per_image([s.cx for s in splits]),
        cy=per_image([s.cy for s in splits]),
        width=torch.tensor([w for w, _ in sizes], dtype=torch.long)[:, None],
        height=torch.tensor([h for _, h in sizes], dtype=torch.long)[:, None],
        camera_type=CameraType.PERSPECTIVE,
        metadata={"scene_index": torch.from_numpy(scene_index).long()[:, None]},
    )
    bound = config.scene_box_bound
    return DataparserOutputs(
        image_filenames=[f for s in splits for f in s.image_filenames],
        mask_filenames=[f for s in splits for f in s.mask_filenames] if splits and all(masked) else None,
        cameras=cameras,
        alpha_color=torch.ones(3) if config.alpha_color == "white" else torch.zeros(3),
        scene_box=SceneBox(aabb=torch.tensor([[-bound, -bound, -bound], [bound, bound, bound]], dtype=torch.float32)),
        metadata={"scene_names": list(scene_names)},
        dataparser_scale=config.scale_factor,
    )


@dataclass
class SceneCollectionDataParserConfig(CollectionDataParserConfig):
    """A collection of scenes in blender or nerfstudio format."""

    _target: Type = field(default_factory=lambda: SceneCollection)
    data: Path = Path()
    """A folder of scene folders, or one scene folder. A scene folder holds ``transforms_train.json`` and
    ``transforms_test.json`` (blender format; ``transforms_val.json`` is ignored) or ``transforms.json`` (nerfstudio
    format, split by its ``*_filenames`` lists, else every 8th frame is held out). Poses are camera-to-world in
    the OpenGL convention; ``fl_x, fl_y, cx, cy, w, h`` are used where given, else ``camera_angle_x`` and the
    image centre."""


class SceneCollection(CollectionDataParser):
    """Blender/nerfstudio-format collections; see ``SceneCollectionDataParserConfig``."""

    config: SceneCollectionDataParserConfig
    scene_description = "transforms_train.json (blender format) or transforms.json (nerfstudio format)"

    def is_scene(self, folder: Path) -> bool:
        return (folder / "transforms_train.json").is_file() or (folder / "transforms.json").is_file()

    def read_split(self, scene_dir: Path, split: Literal["train", "test"]) -> SceneSplit:
        if (scene_dir / "transforms_train.json").is_file():
            path = scene_dir / f"transforms_{split}.json"
            meta = read_json(path)
            return _read_frames(scene_dir, meta, _frames(meta, path), path)
        path = scene_dir / "transforms.json"
        meta = read_json(path)
        if not any(key in meta for key in ("train_filenames", "test_filenames", "val_filenames")):
            self.interval_split.append(path)
        return _read_frames(scene_dir, meta, _nerfstudio_split(meta, _frames(meta, path), split, path), path)

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Dict | None) -> DataparserOutputs:
        self.interval_split: List[Path] = []  # the transforms.json files read without train/test file lists
        outputs = super()._generate_dataparser_outputs(split, **kwargs)
        if split == "train" and self.interval_split:
            more = len(self.interval_split) - 1
            CONSOLE.log(
                f"{self.interval_split[0]}{f' and {more} more' if more else ''}: "
                f"no train/test file lists, so every {NERFSTUDIO_EVAL_INTERVAL}th frame in file_path order, from the "
                "first, is held out for evaluation (nerfstudio's own parser holds out 10%); give train_filenames and "
                "test_filenames in transforms.json to choose"
            )
        return outputs


def _frames(meta: Any, path: Path) -> List[Dict[str, Any]]:
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise CollectionError(f"{path}: expected an object with a non-empty 'frames' list")
    for i, frame in enumerate(meta["frames"]):
        if (
            not isinstance(frame, dict)
            or not isinstance(frame.get("file_path"), str)
            or "transform_matrix" not in frame
        ):
            raise CollectionError(f"{path}: frame {i} needs a 'file_path' string and a 'transform_matrix'")
    return meta["frames"]


def _nerfstudio_split(
    meta: Dict[str, Any], frames: List[Dict[str, Any]], split: Literal["train", "test"], path: Path
) -> List[Dict[str, Any]]:
    """Frames of one split of a nerfstudio ``transforms.json``: from its ``train_filenames`` and ``test_filenames``
    (or ``val_filenames``) lists where present (a missing list means the complement of the other), else every
    NERFSTUDIO_EVAL_INTERVAL-th frame in ``file_path`` order is held out."""
    frames = sorted(frames, key=lambda f: f["file_path"])
    keys = {"train": meta.get("train_filenames"), "test": meta.get("test_filenames", meta.get("val_filenames"))}
    if keys["train"] is None and keys["test"] is None:
        held_out = [i % NERFSTUDIO_EVAL_INTERVAL == 0 for i in range(len(frames))]
        chosen = [f for f, h in zip(frames, held_out, strict=True) if h == (split == "test")]
    else:
        by_name = {os.path.normpath(f["file_path"]): f for f in frames}
        lists = {}
        for name, files in keys.items():
            if files is None:
                continue
            if not isinstance(files, list) or not all(isinstance(x, str) for x in files):
                raise CollectionError(f"{path}: the {name} file list must be a list of strings")
            missing = [x for x in files if os.path.normpath(x) not in by_name]
            if missing:
                raise CollectionError(f"{path}: the {name} file list names files that no frame has: {missing[:3]}")
            lists[name] = {os.path.normpath(x) for x in files}
        if split in lists:
            chosen = [f for n, f in by_name.items() if n in lists[split]]
        else:
            other = lists["test" if split == "train" else "train"]
            chosen = [f for n, f in by_name.items() if n not in other]
    if not chosen:
        raise CollectionError(f"{path}: the {split} split has no frames")
    return chosen


def _resolve_image(scene_dir: Path, file_path: str, where: Path) -> Path:
    """Image path of a frame; blender writes ``file_path`` without its ``.png`` extension."""
    path = scene_dir / file_path
    if path.is_file():
        return path
    with_png = path.with_name(path.name + ".png")
    if with_png.is_file():
        return with_png
    raise MissingFileError(f"{path}: image listed in {where} does not exist (also tried {with_png.name})")


def _read_frames(scene_dir: Path, meta: Dict[str, Any], frames: List[Dict[str, Any]], path: Path) -> SceneSplit:
    filenames = [_resolve_image(scene_dir, f["file_path"], path) for f in frames]
    width, height = check_image_sizes(filenames, str(path))
    poses = np.stack([check_pose(f["transform_matrix"], f"{path}: frame {f['file_path']!r}") for f in frames])
    intrinsics = np.array([_intrinsics(meta, f, width, height, path) for f in frames])
    masks = _read_masks(scene_dir, frames, filenames, (width, height), path)
    return SceneSplit(filenames, poses, *intrinsics.T, width=width, height=height, mask_filenames=masks)


def _read_masks(
    scene_dir: Path, frames: List[Dict[str, Any]], images: List[Path], size: Tuple[int, int], path: Path
) -> Optional[List[Path]]:
    """The frames' masks (`mask_path`, relative to the scene folder), each checked to decode at its image's size;
    None when no frame has one."""
    given = [frame.get("mask_path") for frame in frames]
    if all(mask is None for mask in given):
        return None
    missing = next(i for i, mask in enumerate(given + [None]) if not isinstance(mask, str))
    if missing < len(given):
        raise CollectionError(
            f"{path}: frame {frames[missing]['file_path']!r} has no mask_path string while other frames have masks: "
            "give a mask for every frame or for none"
        )
    masks = [scene_dir / mask for mask in given]
    for mask in masks:
        read_mask(mask, size)
    return masks


def _intrinsics(
    meta: Dict[str, Any], frame: Dict[str, Any], width: int, height: int, path: Path
) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a frame: per-frame keys override the file's, which default to the image centre and the
    field of view ``camera_angle_x``."""

    def get(key: str) -> Any:
        value = frame.get(key, meta.get(key))
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise CollectionError(f"{path}: '{key}' must be a number, got {value!r}")
        return value

    where = f"{path}: frame {frame['file_path']!r}"
    declared = (get("w"), get("h"))
    if declared[0] is not None and declared[1] is not None and (int(declared[0]), int(declared[1])) != (width, height):
        raise CollectionError(f"{where} declares w={declared[0]}, h={declared[1]} but its image is {width}x{height}")
    if any(get(k) not in (None, 0) for k in _DISTORTION_KEYS):
        raise CollectionError(f"{where}: lens distortion ({', '.join(_DISTORTION_KEYS)}) is not supported")
    fx = get("fl_x")
    if fx is None:
        angle = get("camera_angle_x")
        if angle is None:
            raise CollectionError(f"{where}: no focal length ('fl_x' or 'camera_angle_x')")
        fx = 0.5 * width / math.tan(0.5 * angle)
    fy = get("fl_y")
    if fy is None:
        angle_y = get("camera_angle_y")
        fy = fx if angle_y is None else 0.5 * height / math.tan(0.5 * angle_y)
    cx = get("cx")
    cy = get("cy")
    values = (float(fx), float(fy), 0.5 * width if cx is None else float(cx), 0.5 * height if cy is None else float(cy))
    if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
        raise CollectionError(f"{where}: invalid intrinsics (fx, fy, cx, cy) = {values}")
    return values
