"""Deterministic procedural car-like objects, their cameras, and an analytic ray-casting renderer."""

from __future__ import annotations

import math
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
from latent_triplane_ns.scene_io import CollectionError, SceneData, SceneViews

GENERATOR_NAME = "latent_triplane_ns.procedural"
GENERATOR_VERSION = 1
"""Bump when the geometry, colours, cameras or renderer change: caches written by another version are refused."""

CAMERA_RADIUS = 2.6
"""Distance of every camera from the origin, in world units."""
FOV_Y_DEG = 52.0
"""Vertical field of view of every camera."""
ELEVATION_RANGE_DEG = (5.0, 60.0)
"""Camera elevations above the horizon (the xy plane)."""
SUPERSAMPLE = 2
"""Each pixel is the box average of SUPERSAMPLE x SUPERSAMPLE rays (anti-aliasing)."""

# Two directional lights plus ambient; the weights sum to about 1 so a surface facing the key light keeps its colour.
_KEY_LIGHT = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])
_FILL_LIGHT = np.array([-0.6, -0.35, 0.45]) / np.linalg.norm([-0.6, -0.35, 0.45])
_AMBIENT, _KEY_WEIGHT, _FILL_WEIGHT = 0.25, 0.6, 0.2

_TYRE_COLOR = (0.06, 0.06, 0.065)
_HUB_COLOR = (0.72, 0.72, 0.75)
_HEADLIGHT_COLOR = (0.97, 0.93, 0.72)
_TAILLIGHT_COLOR = (0.75, 0.06, 0.05)


@dataclass(frozen=True)
class CarParameters:
    """Everything that defines one car. Lengths in world units (x forward, y left, z up); colours are linear RGB in
    [0, 1]. The car stands on the plane z = ground_z and is centred at the origin."""

    seed: int
    index: int
    length: float
    width: float
    ground_z: float
    """Height of the ground plane the wheels stand on."""
    body_bottom: float
    body_top: float
    cabin_x: Tuple[float, float]
    """Rear and front x of the cabin, which sits on the body, centred in y."""
    cabin_width: float
    cabin_top: float
    """Height of the roof, the highest point of the car."""
    wheel_radius: float
    wheel_width: float
    wheel_x: Tuple[float, float]
    """Rear and front wheel centre x."""
    has_spoiler: bool
    body_color: Tuple[float, float, float]
    cabin_color: Tuple[float, float, float]
    window_color: Tuple[float, float, float]


@dataclass(frozen=True)
class KeyPoint:
    """A surface point of a car, with its outward normal and the colour it is rendered with when lit."""

    position: np.ndarray
    normal: np.ndarray
    color: np.ndarray


@dataclass(frozen=True)
class Primitive:
    """An axis-aligned box or a cylinder along the y axis, with a flat colour and an optional surface pattern.

    ``lo``/``hi`` are the corners of the box, or of the cylinder's bounding box; a cylinder's axis passes through
    ``center`` = (x, z) and its caps are the planes y = ``lo[1]`` and y = ``hi[1]``. The pattern paints framed windows
    on the side faces of a box (cabin) or a hub on the caps of a cylinder (wheel) with ``pattern_color``."""

    kind: Literal["box", "cylinder"]
    lo: Tuple[float, float, float]
    hi: Tuple[float, float, float]
    color: Tuple[float, float, float]
    pattern: Literal["windows", "hub"] | None = None
    pattern_color: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    center: Tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0


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


def _hsv_to_rgb(h: float, s: float, v: float) -> Tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _paint(rng: np.random.Generator) -> Tuple[float, float, float]:
    """A plausible car paint: a quarter greyscale (black to white), otherwise a saturated hue."""
    if rng.random() < 0.25:
        v = float(rng.uniform(0.12, 0.95))
        return (v, v, v)
    return _hsv_to_rgb(float(rng.random()), float(rng.uniform(0.45, 0.9)), float(rng.uniform(0.45, 0.95)))


def sample_car(seed: int, index: int) -> CarParameters:
    """Draws the parameters of car ``index`` of the collection ``seed``.

    The draw depends only on ``(seed, index)``, so scene k is the same whatever the number of scenes generated.
    """
    rng = np.random.default_rng((seed, index))
    length = float(rng.uniform(1.6, 1.76))
    width = float(rng.uniform(0.62, 0.8))
    wheel_radius = float(rng.uniform(0.13, 0.18))
    wheel_width = float(rng.uniform(0.08, 0.12))
    clearance = wheel_radius * float(rng.uniform(0.6, 0.9))
    body_height = float(rng.uniform(0.22, 0.32))
    cabin_height = float(rng.uniform(0.16, 0.26))
    cabin_length = length * float(rng.uniform(0.4, 0.6))
    cabin_center = length * float(rng.uniform(-0.12, 0.05))
    cabin_width = width * float(rng.uniform(0.8, 0.95))
    overhang_rear = wheel_radius + float(rng.uniform(0.05, 0.15))
    overhang_front = wheel_radius + float(rng.uniform(0.05, 0.15))
    has_spoiler = bool(rng.random() < 0.4)
    body_color = _paint(rng)
    cabin_color = body_color if rng.random() < 0.7 else _paint(rng)
    window_tint = float(rng.uniform(0.8, 1.2))

    ground_z = -0.5 * (clearance + body_height + cabin_height)
    body_bottom = ground_z + clearance
    body_top = body_bottom + body_height
    half = 0.5 * length
    cabin_x = (max(cabin_center - 0.5 * cabin_length, -half + 0.12), min(cabin_center + 0.5 * cabin_length, half - 0.2))
    return CarParameters(
        seed=seed,
        index=index,
        length=length,
        width=width,
        ground_z=ground_z,
        body_bottom=body_bottom,
        body_top=body_top,
        cabin_x=cabin_x,
        cabin_width=cabin_width,
        cabin_top=body_top + cabin_height,
        wheel_radius=wheel_radius,
        wheel_width=wheel_width,
        wheel_x=(-half + overhang_rear, half - overhang_front),
        has_spoiler=has_spoiler,
        body_color=body_color,
        cabin_color=cabin_color,
        window_color=(0.1 * window_tint, 0.13 * window_tint, 0.18 * window_tint),
    )


def car_primitives(params: CarParameters) -> List[Primitive]:
    """The boxes and cylinders of a car: body, cabin (with windows), four wheels (with hubs), head and tail lights,
    and an optional rear spoiler."""
    p = params
    half_l, half_w = 0.5 * p.length, 0.5 * p.width
    prims = [
        Primitive("box", (-half_l, -half_w, p.body_bottom), (half_l, half_w, p.body_top), p.body_color),
        Primitive(
            "box",
            (p.cabin_x[0], -0.5 * p.cabin_width, p.body_top),
            (p.cabin_x[1], 0.5 * p.cabin_width, p.cabin_top),
            p.cabin_color,
            pattern="windows",
            pattern_color=p.window_color,
        ),
    ]
    # Wheels stick out of the body sides by 30% of their width so they are visible from the side.
    wheel_z = p.ground_z + p.wheel_radius
    outer = half_w + 0.3 * p.wheel_width
    for x in p.wheel_x:
        for y0, y1 in ((-outer, -outer + p.wheel_width), (outer - p.wheel_width, outer)):
            prims.append(
                Primitive(
                    "cylinder",
                    (x - p.wheel_radius, y0, wheel_z - p.wheel_radius),
                    (x + p.wheel_radius, y1, wheel_z + p.wheel_radius),
                    _TYRE_COLOR,
                    pattern="hub",
                    pattern_color=_HUB_COLOR,
                    center=(x, wheel_z),
                    radius=p.wheel_radius,
                )
            )
    light_z = (p.body_top - 0.1, p.body_top - 0.04)
    for sign in (-1.0, 1.0):
        y = sign * 0.32 * p.width
        prims.append(
            Primitive(
                "box", (half_l - 0.01, y - 0.06, light_z[0]), (half_l + 0.012, y + 0.06, light_z[1]), _HEADLIGHT_COLOR
            )
        )
        prims.append(
            Primitive(
                "box", (-half_l - 0.012, y - 0.06, light_z[0]), (-half_l + 0.01, y + 0.06, light_z[1]), _TAILLIGHT_COLOR
            )
        )
    if p.has_spoiler:
        wing_top = min(p.body_top + 0.11, p.cabin_top - 0.02)
        prims.append(
            Primitive(
                "box",
                (-half_l, -0.45 * p.width, wing_top - 0.03),
                (-half_l + 0.14, 0.45 * p.width, wing_top),
                p.body_color,
            )
        )
        for sign in (-1.0, 1.0):
            y = sign * 0.3 * p.width
            prims.append(
                Primitive(
                    "box",
                    (-half_l + 0.04, y - 0.02, p.body_top),
                    (-half_l + 0.08, y + 0.02, wing_top - 0.03),
                    (0.1, 0.1, 0.1),
                )
            )
    return prims


def shade(color: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Lambertian shading of base colours (..., 3) with unit normals (..., 3) under the fixed lights."""
    # Element-wise products rather than matmul: BLAS would start its own threads in every worker process.
    key = np.clip((normal * _KEY_LIGHT).sum(-1), 0.0, None)
    fill = np.clip((normal * _FILL_LIGHT).sum(-1), 0.0, None)
    light = _AMBIENT + _KEY_WEIGHT * key + _FILL_WEIGHT * fill
    return np.clip(np.asarray(color) * light[..., None], 0.0, 1.0)


def car_key_points(params: CarParameters) -> Dict[str, KeyPoint]:
    """Named surface points of a car, for tests and checks: ``roof_center`` (top centre of the cabin, visible from
    any camera above the roof) and ``hood_center`` (top of the body, between the cabin and the front)."""
    up = np.array([0.0, 0.0, 1.0])
    roof = np.array([0.5 * (params.cabin_x[0] + params.cabin_x[1]), 0.0, params.cabin_top])
    hood = np.array([0.5 * (params.cabin_x[1] + 0.5 * params.length), 0.0, params.body_top])
    return {
        "roof_center": KeyPoint(roof, up, shade(np.array(params.cabin_color), up)),
        "hood_center": KeyPoint(hood, up, shade(np.array(params.body_color), up)),
    }


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


def _intersect_box(prim: Primitive, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t0 = (np.asarray(prim.lo) - origin) * inv
        t1 = (np.asarray(prim.hi) - origin) * inv
    near = np.nanmax(np.minimum(t0, t1), axis=-1)
    far = np.nanmin(np.maximum(t0, t1), axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _intersect_cylinder(prim: Primitive, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    (cx, cz), r, y0, y1 = prim.center, prim.radius, prim.lo[1], prim.hi[1]
    ox, oz = origin[0] - cx, origin[2] - cz
    dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    a = dx * dx + dz * dz
    b = 2.0 * (dx * ox + dz * oz)
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        y_side = origin[1] + t_side * dy
        t_side = np.where((disc >= 0) & (a > 0) & (t_side > 0) & (y_side >= y0) & (y_side <= y1), t_side, np.inf)
        best = t_side
        for y_cap in (y0, y1):
            t_cap = (y_cap - origin[1]) / dy
            px, pz = ox + t_cap * dx, oz + t_cap * dz
            ok = np.isfinite(t_cap) & (t_cap > 0) & (px * px + pz * pz <= r * r)
            best = np.minimum(best, np.where(ok, t_cap, np.inf))
    return best


def _normals_and_colors(prim: Primitive, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Outward unit normals and base colours of hit points (M, 3) on a primitive."""
    lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
    colors = np.empty_like(points)
    colors[:] = prim.color
    if prim.kind == "box":
        dist = np.concatenate([np.abs(points - lo), np.abs(points - hi)], axis=-1)  # faces -x -y -z +x +y +z
        face = np.argmin(dist, axis=-1)
        axis = face % 3
        normals = np.zeros_like(points)
        normals[np.arange(len(points)), axis] = np.where(face < 3, -1.0, 1.0)
        if prim.pattern == "windows":
            height = hi[2] - lo[2]
            band = (points[:, 2] > lo[2] + 0.2 * height) & (points[:, 2] < hi[2] - 0.15 * height)
            inset_x = (points[:, 0] > lo[0] + 0.05) & (points[:, 0] < hi[0] - 0.05)
            inset_y = (points[:, 1] > lo[1] + 0.04) & (points[:, 1] < hi[1] - 0.04)
            window = band & (axis != 2) & np.where(axis == 0, inset_y, inset_x)
            colors[window] = prim.pattern_color
        return normals, colors
    (cx, cz), r = prim.center, prim.radius
    y_mid = 0.5 * (lo[1] + hi[1])
    on_cap = np.abs(np.abs(points[:, 1] - y_mid) - 0.5 * (hi[1] - lo[1])) < 1e-7
    normals = np.stack([points[:, 0] - cx, np.zeros(len(points)), points[:, 2] - cz], axis=-1) / r
    normals[on_cap] = 0.0
    normals[on_cap, 1] = np.sign(points[on_cap, 1] - y_mid)
    if prim.pattern == "hub":
        colors[on_cap & ((points[:, 0] - cx) ** 2 + (points[:, 2] - cz) ** 2 < (0.55 * r) ** 2)] = prim.pattern_color
    return normals, colors


def _bounds(primitives: List[Primitive]) -> Primitive:
    lo = np.min([p.lo for p in primitives], axis=0)
    hi = np.max([p.hi for p in primitives], axis=0)
    return Primitive("box", tuple(lo - 1e-3), tuple(hi + 1e-3), (0.0, 0.0, 0.0))


def render_view(
    primitives: List[Primitive], c2w: np.ndarray, intrinsics: Intrinsics, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """Renders one view by ray casting.

    Args:
        primitives: the object, e.g. ``car_primitives(params)``.
        c2w: camera-to-world (4, 4) or (3, 4), OpenGL convention.
        intrinsics: pinhole intrinsics, pixel-centre convention.
        supersample: rays per pixel side; the pixel is their box average.

    Returns:
        Float32 RGBA image (H, W, 4) in [0, 1] with straight (not premultiplied) alpha: alpha is the fraction of the
        pixel's rays that hit the object, RGB the mean colour of those rays, and white where nothing is hit.
    """
    h, w, s = intrinsics.height, intrinsics.width, supersample
    sub = (np.arange(s) + 0.5) / s
    u = (np.arange(w)[:, None] + sub[None, :]).reshape(-1)  # (W*s,) sample columns, pixel-major
    v = (np.arange(h)[:, None] + sub[None, :]).reshape(-1)
    uu, vv = np.meshgrid(u, v)  # (H*s, W*s)
    dirs_cam = np.stack(
        [(uu - intrinsics.cx) / intrinsics.fx, -(vv - intrinsics.cy) / intrinsics.fy, -np.ones_like(uu)], -1
    )
    dirs = np.einsum("nj,ij->ni", dirs_cam.reshape(-1, 3), np.asarray(c2w[:3, :3], dtype=np.float64))
    origin = np.asarray(c2w[:3, 3], dtype=np.float64)

    # Only rays that hit the object's bounding box are traced against the parts.
    candidates = np.flatnonzero(np.isfinite(_intersect_box(_bounds(primitives), origin, dirs)))
    cand_dirs = dirs[candidates]
    best_t = np.full(len(candidates), np.inf)
    best_prim = np.full(len(candidates), -1)
    for k, prim in enumerate(primitives):
        t = (
            _intersect_box(prim, origin, cand_dirs)
            if prim.kind == "box"
            else _intersect_cylinder(prim, origin, cand_dirs)
        )
        closer = t < best_t
        best_t[closer], best_prim[closer] = t[closer], k

    rgb = np.zeros((len(dirs), 3))
    hit = np.zeros(len(dirs))
    for k, prim in enumerate(primitives):
        sel = best_prim == k
        if not sel.any():
            continue
        points = origin + best_t[sel, None] * cand_dirs[sel]
        normals, colors = _normals_and_colors(prim, points)
        rgb[candidates[sel]] = shade(colors, normals)
        hit[candidates[sel]] = 1.0

    # Box-average the s x s samples of each pixel; RGB is averaged over the samples that hit (straight alpha).
    hits = hit.reshape(h, s, w, s).sum(axis=(1, 3))
    rgb_sum = rgb.reshape(h, s, w, s, 3).sum(axis=(1, 3))
    image = np.ones((h, w, 4), dtype=np.float32)
    covered = hits > 0
    image[covered, :3] = rgb_sum[covered] / hits[covered, None]
    image[..., 3] = hits / (s * s)
    return image


def render_scene(
    seed: int, index: int, image_size: int = 128, num_train_views: int = 50, num_test_views: int = 10
) -> SceneData:
    """Renders car ``index`` of collection ``seed`` from its training and held-out cameras."""
    params = sample_car(seed, index)
    primitives = car_primitives(params)
    intrinsics = camera_intrinsics(image_size)
    splits = []
    for poses in (train_poses(seed, index, num_train_views), heldout_poses(seed, index, num_test_views)):
        images = np.zeros((len(poses), image_size, image_size, 4), dtype=np.float32)
        for k, pose in enumerate(poses):
            images[k] = render_view(primitives, pose, intrinsics)
        splits.append(SceneViews(poses=poses, images=images))
    info = {
        **_settings(seed, image_size, num_train_views, num_test_views),
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


def _settings(seed: int, image_size: int, num_train_views: int, num_test_views: int) -> Dict[str, object]:
    return {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "image_size": image_size,
        "num_train_views": num_train_views,
        "num_test_views": num_test_views,
    }


@dataclass
class GenerationSummary:
    """What ``generate_collection`` did."""

    scene_dirs: List[Path]
    """The requested scene folders, in index order."""
    num_generated: int
    """Scenes rendered by this call; the others were already complete and were kept."""
    seconds: float
    """Wall time of the call."""


def _scene_is_complete(scene_dir: Path, info: Dict[str, object], fmt: scene_io.SceneFormat) -> bool:
    try:
        stored = scene_io.read_json(scene_dir / scene_io.SCENE_INFO_FILE)
    except CollectionError:
        return False
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in info.items()):
        return False
    files = scene_io.expected_scene_files(fmt, int(info["num_train_views"]), int(info["num_test_views"]))
    return all((scene_dir / f).is_file() for f in files)


def _generate_scene(job: Tuple[Path, int, int, int, int, int, str]) -> int:
    scene_dir, seed, index, image_size, num_train_views, num_test_views, fmt = job
    scene = render_scene(seed, index, image_size, num_train_views, num_test_views)
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
) -> GenerationSummary:
    """Generates scenes ``first_scene .. first_scene + num_scenes - 1`` of a procedural car collection.

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
    start = time.perf_counter()
    output_dir = Path(output_dir)
    settings = {**_settings(seed, image_size, num_train_views, num_test_views), "format": fmt}
    collection_file = output_dir / scene_io.COLLECTION_FILE
    if collection_file.exists():
        stored = scene_io.read_json(collection_file)
        if stored != settings:
            raise CollectionError(
                f"{collection_file}: the folder holds a collection generated with {stored}, not the requested "
                f"{settings}; choose another folder or delete this one"
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
        (scene_dir, seed, i, image_size, num_train_views, num_test_views, fmt)
        for i, scene_dir in zip(indices, scene_dirs, strict=True)
        if not _scene_is_complete(scene_dir, {**settings, "index": i}, fmt)
    ]
    if jobs:
        _run_jobs(jobs, workers, show_progress)
    return GenerationSummary(scene_dirs=scene_dirs, num_generated=len(jobs), seconds=time.perf_counter() - start)


def _run_jobs(jobs: List[Tuple[Path, int, int, int, int, int, str]], workers: int | None, show_progress: bool) -> None:
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
