"""Collection writing: renders scenes, records their settings, keeps complete ones, runs the worker pool."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Literal, Tuple

import numpy as np

from latent_triplane_ns import scene_io
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.procedural.cameras import camera_intrinsics, heldout_poses, train_poses
from latent_triplane_ns.procedural.families import DEFAULT_FAMILY, FAMILIES, sample_object
from latent_triplane_ns.procedural.raycast import render_view
from latent_triplane_ns.scene_io import CollectionError, SceneData, SceneViews

GENERATOR_NAME = "latent_triplane_ns.procedural"
GENERATOR_VERSION = 1
"""Bump when the geometry, colours, cameras or renderer change: caches written by another version are refused."""
Backdrop = Literal["alpha", "color", "gradient"]
BACKDROPS = ("alpha", "color", "gradient")


def backdrop_colors(seed: int, index: int) -> np.ndarray:
    """Two colours (2, 3) in [0, 1] of scene `index`'s backdrop: saturated, mid to light, never near white; they
    depend on (seed, index) only."""
    rng = np.random.default_rng([seed, index, 0xBAC])
    hue = rng.uniform(0.0, 1.0, 2)
    saturation, value = rng.uniform(0.45, 0.9, 2), rng.uniform(0.35, 0.85, 2)
    # HSV -> RGB, each channel from its offset on the hue circle
    k = (np.array([5.0, 3.0, 1.0])[None] + 6.0 * hue[:, None]) % 6.0
    return value[:, None] - value[:, None] * saturation[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def over_backdrop(images: np.ndarray, backdrop: Backdrop, colors: np.ndarray) -> np.ndarray:
    """RGBA views (N, H, W, 4) composited over the backdrop: 'alpha' keeps them; 'color' puts them on the first
    colour; 'gradient' on a vertical blend from the first colour (top) to the second (bottom), a studio sweep."""
    if backdrop == "alpha":
        return images
    height = images.shape[1]
    if backdrop == "color":
        behind = np.broadcast_to(colors[0], (height, 3))
    else:
        t = np.linspace(0.0, 1.0, height)[:, None]
        behind = (1.0 - t) * colors[0] + t * colors[1]
    alpha = images[..., 3:]
    return (images[..., :3] * alpha + behind[None, :, None, :] * (1.0 - alpha)).astype(np.float32)


def render_scene(
    seed: int,
    index: int,
    image_size: int = 128,
    num_train_views: int = 50,
    num_test_views: int = 10,
    family: str = DEFAULT_FAMILY,
    backdrop: Backdrop = "alpha",
) -> SceneData:
    """Renders object ``index`` of the ``family`` collection ``seed`` (a car by default) from its training and
    held-out cameras, with alpha or over a backdrop without it. The cameras depend on (seed, index) only, not on the
    family."""
    params, primitives = sample_object(family, seed, index)
    intrinsics = camera_intrinsics(image_size)
    splits = []
    for poses in (train_poses(seed, index, num_train_views), heldout_poses(seed, index, num_test_views)):
        images = np.zeros((len(poses), image_size, image_size, 4), dtype=np.float32)
        for k, pose in enumerate(poses):
            images[k] = render_view(primitives, pose, intrinsics)
        splits.append(SceneViews(poses=poses, images=over_backdrop(images, backdrop, backdrop_colors(seed, index))))
    info = {
        **_settings(family, seed, image_size, num_train_views, num_test_views, backdrop),
        "index": index,
        "parameters": asdict(params),
    }
    return SceneData(
        fx=intrinsics.fx,
        fy=intrinsics.fy,
        cx=intrinsics.cx,
        cy=intrinsics.cy,
        width=intrinsics.width,
        height=intrinsics.height,
        train=splits[0],
        test=splits[1],
        info=info,
    )


def _settings(
    family: str, seed: int, image_size: int, num_train_views: int, num_test_views: int, backdrop: Backdrop = "alpha"
) -> Dict[str, object]:
    settings = {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "family": family,
        "seed": seed,
        "image_size": image_size,
        "num_train_views": num_train_views,
        "num_test_views": num_test_views,
    }
    if backdrop != "alpha":  # collections written before backdrops existed have alpha and name none
        settings["backdrop"] = backdrop
    return settings


@dataclass
class GenerationSummary:
    """What ``generate_collection`` did."""

    scene_dirs: List[Path]
    """The requested scene folders, in index order."""
    num_generated: int
    """Scenes rendered by this call; the others were already complete and were kept."""
    seconds: float
    """Wall time of the call."""


def _with_family(stored: object) -> object:
    """Settings read from disk; those written before families existed hold cars and name no family."""
    if isinstance(stored, dict) and stored.get("generator") == GENERATOR_NAME and "family" not in stored:
        return {**stored, "family": DEFAULT_FAMILY}
    return stored


def _scene_is_complete(scene_dir: Path, info: Dict[str, object], fmt: scene_io.SceneFormat) -> bool:
    try:
        stored = _with_family(scene_io.read_json(scene_dir / scene_io.SCENE_INFO_FILE))
    except CollectionError:
        return False
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in info.items()):
        return False
    has_alpha = info.get("backdrop", "alpha") == "alpha"
    files = scene_io.expected_scene_files(fmt, int(info["num_train_views"]), int(info["num_test_views"]), has_alpha)
    return all((scene_dir / f).is_file() for f in files)


def _generate_scene(job: Tuple[Path, int, int, int, int, int, str, str, str]) -> int:
    scene_dir, seed, index, image_size, num_train_views, num_test_views, fmt, family, backdrop = job
    scene = render_scene(seed, index, image_size, num_train_views, num_test_views, family, backdrop)
    scene.info["format"] = fmt
    writer = scene_io.write_blender_scene if fmt == "blender" else scene_io.write_srn_scene
    writer(scene_dir, scene)
    return index


def generate_collection(
    output_dir: Path,
    num_scenes: int,
    seed: int = 0,
    image_size: int = 128,
    num_train_views: int = 50,
    num_test_views: int = 10,
    first_scene: int = 0,
    fmt: scene_io.SceneFormat = "blender",
    workers: int | None = None,
    show_progress: bool = True,
    family: str = DEFAULT_FAMILY,
    backdrop: Backdrop = "alpha",
) -> GenerationSummary:
    """Generates scenes ``first_scene .. first_scene + num_scenes - 1`` of a procedural collection of cars (the
    default) or of another family of objects.

    Scene folders are ``output_dir/scene_00000`` etc., each written atomically. The call is idempotent: scenes that
    are already complete with these settings are kept, missing or incomplete ones are (re)generated, so it also
    resumes an interrupted run and extends a collection. ``output_dir/collection.json`` records the settings; a
    folder generated with other settings, or a non-empty folder without that file, is refused rather than
    overwritten.

    Args:
        output_dir: collection root, created if needed.
        num_scenes: how many scenes.
        seed: collection seed; scene k depends only on (seed, k).
        image_size: image side in pixels.
        num_train_views: training views per scene.
        num_test_views: held-out views per scene.
        first_scene: index of the first scene.
        fmt: "blender" (``transforms_*.json``) or "srn" (``rgb/``, ``pose/``, ``intrinsics.txt``).
        workers: processes rendering scenes in parallel; None uses one per CPU core.
        show_progress: show a progress bar with ETA.
        family: "cars", "furniture", "toys" or "kitchen" (see ``families.py``); recorded in ``collection.json`` and every
            ``scene.json``, so a folder of one family is refused for another.
        backdrop: "alpha" (views with alpha, RGBA PNGs), or views without alpha (JPGs in blender format, RGB PNGs
            in SRN) over a backdrop of each scene's own colours: "color" (one colour) or "gradient" (a vertical
            blend of two). Recorded like the family.

    Raises:
        CollectionError: the folder holds something else (see above).
        ValueError: invalid sizes or counts.
    """
    if num_scenes < 1 or first_scene < 0:
        raise InputError(f"Need num_scenes >= 1 and first_scene >= 0, got {num_scenes} and {first_scene}.")
    if image_size < 8 or num_train_views < 1 or num_test_views < 1:
        raise InputError(
            f"Need image_size >= 8 and at least one view per split, got {image_size}, {num_train_views}, {num_test_views}."
        )
    if fmt not in ("blender", "srn"):
        raise InputError(f"Unknown format {fmt!r}, expected 'blender' or 'srn'.")
    if backdrop not in BACKDROPS:
        raise InputError(f"Unknown backdrop {backdrop!r}, expected one of {', '.join(BACKDROPS)}.")
    if family not in FAMILIES:
        raise InputError(f"Unknown procedural family {family!r}, expected one of {', '.join(FAMILIES)}.")
    start = time.perf_counter()
    output_dir = Path(output_dir)
    settings = {**_settings(family, seed, image_size, num_train_views, num_test_views, backdrop), "format": fmt}
    collection_file = output_dir / scene_io.COLLECTION_FILE
    if collection_file.exists():
        stored = _with_family(scene_io.read_json(collection_file))
        if stored != settings:
            differ = (
                ", ".join(
                    f"{k} {stored.get(k, 'alpha' if k == 'backdrop' else None)!r} instead of "
                    f"{settings.get(k, 'alpha' if k == 'backdrop' else None)!r}"
                    for k in {**stored, **settings}
                    if stored.get(k) != settings.get(k)
                )
                if isinstance(stored, dict)
                else "other settings"
            )
            raise CollectionError(
                f"{collection_file}: the folder holds a collection generated with {differ} ({stored}, not the "
                f"requested {settings}); choose another folder or delete this one"
            )
    elif output_dir.exists() and any(output_dir.iterdir()):
        raise CollectionError(
            f"{output_dir}: folder is not empty and has no {scene_io.COLLECTION_FILE}; refusing to write generated "
            "scenes into it"
        )
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        scene_io.write_json(collection_file, settings)

    indices = range(first_scene, first_scene + num_scenes)
    scene_dirs = [output_dir / scene_io.scene_name(i) for i in indices]
    jobs = [
        (scene_dir, seed, i, image_size, num_train_views, num_test_views, fmt, family, backdrop)
        for i, scene_dir in zip(indices, scene_dirs, strict=True)
        if not _scene_is_complete(scene_dir, {**settings, "index": i}, fmt)
    ]
    if jobs:
        _run_jobs(jobs, workers, show_progress)
    return GenerationSummary(scene_dirs=scene_dirs, num_generated=len(jobs), seconds=time.perf_counter() - start)


def _run_jobs(
    jobs: List[Tuple[Path, int, int, int, int, int, str, str, str]], workers: int | None, show_progress: bool
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    columns = (
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task(f"Generating scenes ({workers} worker{'s' if workers > 1 else ''})", total=len(jobs))
        if workers == 1:
            for job in jobs:
                _generate_scene(job)
                progress.advance(task)
            return
        # Workers only use numpy and PIL, so forking is safe even when the parent has imported torch (ns-train).
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(_generate_scene, jobs):
                progress.advance(task)
