"""Scene folders on disk: atomic writers (blender and ShapeNet-SRN layouts) and the checks shared by the parsers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from latent_triplane_ns.atomic import atomic_directory, write_json
from latent_triplane_ns.errors import InputError

SceneFormat = Literal["blender", "srn"]

COLLECTION_FILE = "collection.json"
"""Optional file at a collection's root with the settings of the generator that wrote it."""
SCENE_INFO_FILE = "scene.json"
"""File in a generated scene folder with the scene's generation parameters."""

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying a camera-to-world matrix by this flips its camera y and z axes: OpenCV (x right, y down, z
forward) <-> OpenGL/nerfstudio (x right, y up, looking down -z). It is its own inverse."""


class CollectionError(InputError):
    """A scene collection on disk is missing, malformed or inconsistent. The message names the file at fault."""


class MissingFileError(CollectionError, FileNotFoundError):
    """A file or folder that a scene collection needs does not exist."""


@dataclass
class SceneViews:
    """The views of one split of a scene."""

    poses: np.ndarray
    """Camera-to-world matrices (N, 4, 4), OpenGL/nerfstudio convention."""
    images: np.ndarray
    """Float RGBA images (N, H, W, 4) in [0, 1], straight alpha, or RGB images (N, H, W, 3) without alpha."""


@dataclass
class SceneData:
    """A rendered scene ready to be written: one pinhole camera model shared by all views, two splits."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    train: SceneViews
    test: SceneViews
    info: Dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable description of the scene, written to ``scene.json``."""


@dataclass
class SceneSplit:
    """One split of one scene as read by a parser, in nerfstudio's conventions."""

    image_filenames: List[Path]
    poses: np.ndarray
    """Camera-to-world matrices (N, 4, 4), OpenGL/nerfstudio convention, validated as rigid."""
    fx: np.ndarray
    """Focal lengths in pixels (N,); likewise ``fy``, and the principal point ``cx``, ``cy`` (pixel-centre
    convention: the image centre is (width / 2, height / 2))."""
    fy: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    width: int
    height: int
    mask_filenames: Optional[List[Path]] = None
    """Per-image masks (nerfstudio's `mask_path`: pixels that are 0 carry no loss), where the scene gives them."""


def scene_name(index: int) -> str:
    """Folder name of generated scene ``index``; zero-padded so that name order is index order."""
    return f"scene_{index:05d}"


def write_png(path: Path, image: np.ndarray) -> None:
    """Writes a float image (H, W, 3 or 4) in [0, 1] as an 8-bit RGB(A) PNG."""
    data = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(data, "RGBA" if data.shape[-1] == 4 else "RGB").save(path)


def view_extension(has_alpha: bool) -> str:
    """File extension of a blender-format view: PNG with alpha, else JPG, as a camera writes a photograph."""
    return ".png" if has_alpha else ".jpg"


def write_view(path: Path, image: np.ndarray) -> None:
    """Writes a float view (H, W, 3 or 4) in [0, 1]: RGBA as PNG, RGB as a JPG of quality 95 (by `path`'s suffix)."""
    if path.suffix == ".jpg":
        data = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(data, "RGB").save(path, quality=95)
    else:
        write_png(path, image)


def _camera_keys(scene: SceneData) -> Dict[str, Any]:
    return {
        "camera_angle_x": 2.0 * float(np.arctan(0.5 * scene.width / scene.fx)),
        "fl_x": scene.fx,
        "fl_y": scene.fy,
        "cx": scene.cx,
        "cy": scene.cy,
        "w": scene.width,
        "h": scene.height,
    }


def write_blender_scene(scene_dir: Path, scene: SceneData) -> Path:
    """Writes a scene in blender format, atomically.

    Layout: ``transforms_{train,test}.json`` (``camera_angle_x`` plus explicit ``fl_x, fl_y, cx, cy, w, h``, and
    ``frames`` with ``file_path`` = ``./train/r_0`` etc. without extension, as blender writes it, and the OpenGL
    camera-to-world ``transform_matrix``), RGBA PNGs in ``train/`` and ``test/`` (views without alpha: JPGs, whose
    ``file_path`` names the extension), and ``scene.json``.
    """
    with atomic_directory(scene_dir) as tmp:
        for split, views in (("train", scene.train), ("test", scene.test)):
            (tmp / split).mkdir()
            frames = []
            ext = view_extension(views.images.shape[-1] == 4)
            for i, (pose, image) in enumerate(zip(views.poses, views.images, strict=True)):
                write_view(tmp / split / f"r_{i}{ext}", image)
                file_path = f"./{split}/r_{i}" + ("" if ext == ".png" else ext)
                frames.append({"file_path": file_path, "transform_matrix": np.asarray(pose).tolist()})
            write_json(tmp / f"transforms_{split}.json", {**_camera_keys(scene), "frames": frames})
        write_json(tmp / SCENE_INFO_FILE, scene.info)
    return scene_dir


def write_srn_scene(scene_dir: Path, scene: SceneData) -> Path:
    """Writes a scene in the ShapeNet-SRN layout, atomically.

    Layout: ``rgb/000000.png``..., ``pose/000000.txt``... (16 numbers: the flattened OpenCV camera-to-world matrix,
    x right, y down, z forward), ``intrinsics.txt`` (``f cx cy 0.`` / ``0. 0. 0.`` / ``1.`` / ``H W``) and
    ``scene.json``. The test views come first (indices 0..T-1), then the training views, so an SRN parser that
    takes the first T sorted images as test sees the same split as the blender files.
    """
    if scene.fx != scene.fy:
        raise ValueError(f"The SRN layout has a single focal length; got fx={scene.fx}, fy={scene.fy}.")
    with atomic_directory(scene_dir) as tmp:
        (tmp / "rgb").mkdir()
        (tmp / "pose").mkdir()
        poses = np.concatenate([scene.test.poses, scene.train.poses])
        images = np.concatenate([scene.test.images, scene.train.images])
        for k, (pose, image) in enumerate(zip(poses, images, strict=True)):
            write_png(tmp / "rgb" / f"{k:06d}.png", image)
            cv_pose = np.asarray(pose, dtype=np.float64) @ OPENGL_FROM_OPENCV
            (tmp / "pose" / f"{k:06d}.txt").write_text(" ".join(repr(float(v)) for v in cv_pose.reshape(-1)) + "\n")
        (tmp / "intrinsics.txt").write_text(
            f"{float(scene.fx)!r} {float(scene.cx)!r} {float(scene.cy)!r} 0.\n0. 0. 0.\n1.\n{scene.height} {scene.width}\n"
        )
        write_json(tmp / SCENE_INFO_FILE, scene.info)
    return scene_dir


def expected_scene_files(
    fmt: SceneFormat, num_train_views: int, num_test_views: int, has_alpha: bool = True
) -> List[str]:
    """Relative paths of every file that ``write_{fmt}_scene`` writes for the given view counts (and views with or
    without alpha)."""
    files = [SCENE_INFO_FILE]
    if fmt == "blender":
        ext = view_extension(has_alpha)
        files += ["transforms_train.json", "transforms_test.json"]
        files += [f"train/r_{i}{ext}" for i in range(num_train_views)]
        files += [f"test/r_{i}{ext}" for i in range(num_test_views)]
    else:
        files.append("intrinsics.txt")
        for k in range(num_train_views + num_test_views):
            files += [f"rgb/{k:06d}.png", f"pose/{k:06d}.txt"]
    return files


def read_json(path: Path) -> Any:
    """Reads a JSON file; a missing or malformed file raises a CollectionError naming it."""
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CollectionError(f"{path}: malformed JSON ({err})") from None


def check_pose(matrix: Any, where: str) -> np.ndarray:
    """Validates a camera-to-world matrix and returns it as float64 (4, 4).

    Args:
        matrix: nested lists or an array of shape (4, 4) or (3, 4).
        where: the file (and frame) it comes from, for the error message.

    Raises:
        CollectionError: wrong shape, non-finite values, a rotation part that is not orthonormal within 1e-3, a
            reflection (det != +1), or a last row other than (0, 0, 0, 1).
    """
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise CollectionError(f"{where}: camera pose is not a numeric matrix") from None
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]])
    if m.shape != (4, 4):
        raise CollectionError(f"{where}: camera pose has shape {m.shape}, expected (4, 4) or (3, 4)")
    if not np.isfinite(m).all():
        raise CollectionError(f"{where}: camera pose has non-finite values")
    rot = m[:3, :3]
    err = float(np.abs(rot.T @ rot - np.eye(3)).max())
    if err > 1e-3:
        raise CollectionError(
            f"{where}: camera pose is not rigid: rotation part not orthonormal (max |R^T R - I| = {err:.3g})"
        )
    det = float(np.linalg.det(rot))
    if abs(det - 1.0) > 1e-3:
        raise CollectionError(f"{where}: camera pose is not rigid: det(R) = {det:.4g}, expected +1")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise CollectionError(f"{where}: camera pose's last row is {m[3].tolist()}, expected [0, 0, 0, 1]")
    return m


def check_image_sizes(paths: Sequence[Path], where: str) -> Tuple[int, int]:
    """Checks that the images exist, are readable and all have one size (read from headers only).

    Returns:
        The common (width, height).
    """
    if not paths:
        raise CollectionError(f"{where}: no images")
    first: Tuple[Path, Tuple[int, int]] | None = None
    for path in paths:
        if not path.is_file():
            raise MissingFileError(f"{path}: image listed in {where} does not exist")
        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, UnidentifiedImageError) as err:
            raise CollectionError(f"{path}: not a readable image ({err})") from None
        if first is None:
            first = (path, size)
        elif size != first[1]:
            raise CollectionError(
                f"{path}: image is {size[0]}x{size[1]} but {first[0]} is {first[1][0]}x{first[1][1]}; "
                "all images of a scene must have the same size"
            )
    assert first is not None
    return first[1]


def find_scene_dirs(data: Path, is_scene: Callable[[Path], bool], expected: str) -> List[Path]:
    """Lists the scene folders of a collection, sorted by folder name (plain string order).

    ``data`` is either a single scene folder (``is_scene(data)``) or a folder whose non-hidden subfolders are the
    scenes; files in it (such as ``collection.json``) and hidden folders (such as interrupted writes) are ignored.
    The subfolders are not checked here: ``check_scene_dir`` does that for the selected ones.

    Args:
        data: the collection root or a scene folder.
        is_scene: whether a folder holds a scene.
        expected: what a scene folder holds, for the error messages.
    """
    if not data.exists():
        raise MissingFileError(f"{data}: data folder does not exist")
    if not data.is_dir():
        raise CollectionError(f"{data}: not a folder")
    if is_scene(data):
        return [data]
    for link in data.iterdir():
        if link.is_symlink() and not link.exists():
            raise MissingFileError(f"{link}: a link to {os.readlink(link)}, which does not exist")
    scene_dirs = sorted((p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not scene_dirs:
        raise CollectionError(
            f"{data}: empty collection: no scene folders in it, and it is not a scene folder itself ({expected})"
        )
    return scene_dirs


def check_scene_dir(scene_dir: Path, is_scene: Callable[[Path], bool], expected: str) -> None:
    """Raises a CollectionError if a folder of a collection is not a scene folder."""
    if not is_scene(scene_dir):
        raise MissingFileError(f"{scene_dir}: scene folder without {expected}")


def select_scenes(
    scene_dirs: List[Path],
    data: Path,
    scenes: Sequence[str] | None = None,
    scene_range: Tuple[int, int] | None = None,
) -> List[Path]:
    """Selects scenes by folder name or by a [start, stop) range of the sorted list; the result keeps the sorted
    folder order whatever the order of ``scenes``, so position in it is the scene index."""
    if scenes is not None and scene_range is not None:
        raise CollectionError(f"{data}: give either scene names or a scene range, not both")
    if scenes is not None:
        wanted = set(scenes)
        if len(wanted) != len(scenes):
            raise CollectionError(f"{data}: scene names are repeated in the selection {list(scenes)}")
        by_name = {p.name: p for p in scene_dirs}
        missing = sorted(wanted - set(by_name))
        if missing:
            raise MissingFileError(f"{data}: selected scene(s) {missing} do not exist in the collection")
        return [p for p in scene_dirs if p.name in wanted]
    if scene_range is not None:
        start, stop = scene_range
        if not 0 <= start < stop <= len(scene_dirs):
            raise CollectionError(
                f"{data}: scene range {tuple(scene_range)} is out of bounds: the collection has {len(scene_dirs)} "
                f"scene(s), so 0 <= start < stop <= {len(scene_dirs)} is needed"
            )
        return scene_dirs[start:stop]
    return scene_dirs
