"""The cameras: pinhole intrinsics, look-at poses on a sphere, training and held-out poses, point projection."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

CAMERA_RADIUS = 2.6
"""Distance of every camera from the origin, in world units."""
FOV_Y_DEG = 52.0
"""Vertical field of view of every camera."""
ELEVATION_RANGE_DEG = (5.0, 60.0)
"""Camera elevations above the horizon (the xy plane)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, pixel-centre convention: the centre of pixel (row i, column j) is at
    (u, v) = (j + 0.5, i + 0.5), so an image's centre is (width / 2, height / 2)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def camera_intrinsics(image_size: int) -> Intrinsics:
    """Square pinhole camera with a vertical field of view of FOV_Y_DEG and the principal point at the centre."""
    focal = 0.5 * image_size / math.tan(math.radians(0.5 * FOV_Y_DEG))
    return Intrinsics(focal, focal, 0.5 * image_size, 0.5 * image_size, image_size, image_size)


def look_at_poses(elevations_deg: np.ndarray, azimuths_deg: np.ndarray, radius: float = CAMERA_RADIUS) -> np.ndarray:
    """Camera-to-world matrices (N, 4, 4), OpenGL/nerfstudio convention (x right, y up, looking down -z), for
    cameras on a sphere looking at the origin with the world z axis up in the image."""
    el, az = np.radians(elevations_deg), np.radians(azimuths_deg)
    back = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    right = np.cross(-back, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    up = np.cross(back, right)
    poses = np.zeros((len(back), 4, 4))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = right, up, back
    poses[:, :3, 3] = radius * back
    poses[:, 3, 3] = 1.0
    return poses


def _sin_elevation_bounds() -> Tuple[float, float]:
    return math.sin(math.radians(ELEVATION_RANGE_DEG[0])), math.sin(math.radians(ELEVATION_RANGE_DEG[1]))


def train_poses(seed: int, index: int, num_views: int) -> np.ndarray:
    """Training cameras: a Fibonacci spiral over the elevation band (evenly spread in area), turned by a random
    per-scene azimuth."""
    lo, hi = _sin_elevation_bounds()
    k = np.arange(num_views)
    elevations = np.degrees(np.arcsin(lo + (hi - lo) * (k + 0.5) / max(num_views, 1)))
    offset = np.random.default_rng((seed, index, 1)).uniform(0.0, 360.0)
    azimuths = (offset + k * (180.0 * (3.0 - math.sqrt(5.0)))) % 360.0
    return look_at_poses(elevations, azimuths)


def heldout_poses(seed: int, index: int, num_views: int) -> np.ndarray:
    """Held-out cameras: uniformly random over the elevation band (in area) from an independent sub-seed."""
    lo, hi = _sin_elevation_bounds()
    rng = np.random.default_rng((seed, index, 2))
    elevations = np.degrees(np.arcsin(rng.uniform(lo, hi, num_views)))
    return look_at_poses(elevations, rng.uniform(0.0, 360.0, num_views))


def project_points(points: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Projects world points (N, 3) to continuous pixel coordinates (N, 2) as (u, v) = (column, row) positions;
    pixel (i, j) covers [j, j + 1) x [i, i + 1)."""
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera, OpenGL axes
    u = intrinsics.cx + intrinsics.fx * cam[:, 0] / -cam[:, 2]
    v = intrinsics.cy - intrinsics.fy * cam[:, 1] / -cam[:, 2]
    return np.stack([u, v], axis=-1)
