"""The analytic ray caster: box, cylinder and sphere intersection, hit normals and colours, supersampled views."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from latent_triplane_ns.procedural.cameras import Intrinsics
from latent_triplane_ns.procedural.primitives import AXES, Primitive, shade
from latent_triplane_ns.procedural.textures import surface_colors

SUPERSAMPLE = 2
"""Each pixel is the box average of SUPERSAMPLE x SUPERSAMPLE rays (anti-aliasing)."""


def _intersect_box(prim: Primitive, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t0 = (np.asarray(prim.lo) - origin) * inv
        t1 = (np.asarray(prim.hi) - origin) * inv
    near = np.nanmax(np.minimum(t0, t1), axis=-1)
    far = np.nanmin(np.maximum(t0, t1), axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _intersect_cylinder(prim: Primitive, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    a_ax = AXES[prim.axis]
    r0, r1 = (k for k in range(3) if k != a_ax)  # the radial axes, (x, z) for a cylinder along y
    (c0, c1), r, y0, y1 = prim.center, prim.radius, prim.lo[a_ax], prim.hi[a_ax]
    ox, oz = origin[r0] - c0, origin[r1] - c1
    dx, dy, dz = dirs[:, r0], dirs[:, a_ax], dirs[:, r1]
    a = dx * dx + dz * dz
    b = 2.0 * (dx * ox + dz * oz)
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        y_side = origin[a_ax] + t_side * dy
        t_side = np.where((disc >= 0) & (a > 0) & (t_side > 0) & (y_side >= y0) & (y_side <= y1), t_side, np.inf)
        best = t_side
        for y_cap in (y0, y1):
            t_cap = (y_cap - origin[a_ax]) / dy
            px, pz = ox + t_cap * dx, oz + t_cap * dz
            ok = np.isfinite(t_cap) & (t_cap > 0) & (px * px + pz * pz <= r * r)
            best = np.minimum(best, np.where(ok, t_cap, np.inf))
    return best


def _intersect_sphere(prim: Primitive, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    oc = origin - 0.5 * (np.asarray(prim.lo) + np.asarray(prim.hi))
    a = (dirs * dirs).sum(-1)
    b = (dirs * oc).sum(-1)
    c = float((oc * oc).sum()) - prim.radius * prim.radius
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc >= 0) & (a > 0) & (t > 0), t, np.inf)


_INTERSECT = {"box": _intersect_box, "cylinder": _intersect_cylinder, "sphere": _intersect_sphere}


def _normals(prim: Primitive, points: np.ndarray) -> np.ndarray:
    """Outward unit normals of hit points (M, 3) on a primitive."""
    lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
    if prim.kind == "box":
        dist = np.concatenate([np.abs(points - lo), np.abs(points - hi)], axis=-1)  # faces -x -y -z +x +y +z
        face = np.argmin(dist, axis=-1)
        normals = np.zeros_like(points)
        normals[np.arange(len(points)), face % 3] = np.where(face < 3, -1.0, 1.0)
        return normals
    if prim.kind == "sphere":
        return (points - 0.5 * (lo + hi)) / prim.radius
    a = AXES[prim.axis]
    r0, r1 = (k for k in range(3) if k != a)
    (c0, c1), r = prim.center, prim.radius
    mid = 0.5 * (lo[a] + hi[a])
    on_cap = np.abs(np.abs(points[:, a] - mid) - 0.5 * (hi[a] - lo[a])) < 1e-7
    normals = np.zeros_like(points)
    normals[:, r0], normals[:, r1] = points[:, r0] - c0, points[:, r1] - c1
    normals /= r
    normals[on_cap] = 0.0
    normals[on_cap, a] = np.sign(points[on_cap, a] - mid)
    return normals


def _normals_and_colors(prim: Primitive, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Outward unit normals and base colours of hit points (M, 3) on a primitive."""
    normals = _normals(prim, points)
    return normals, surface_colors(prim, points, normals)


def _bounds(primitives: List[Primitive]) -> Primitive:
    lo = np.min([p.lo for p in primitives], axis=0)
    hi = np.max([p.hi for p in primitives], axis=0)
    return Primitive("box", tuple(lo - 1e-3), tuple(hi + 1e-3), (0.0, 0.0, 0.0))


def render_view(
    primitives: List[Primitive], c2w: np.ndarray, intrinsics: Intrinsics, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """Renders one view by ray casting.

    Args:
        primitives: the object, e.g. ``car_primitives(params)`` or ``furniture_primitives(params)``.
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
        t = _INTERSECT[prim.kind](prim, origin, cand_dirs)
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
