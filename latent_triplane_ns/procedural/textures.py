"""Surface patterns: the base colour of hit points on a primitive, from its pattern (windows, hub, stripes, checker,
grain)."""

from __future__ import annotations

import numpy as np

from latent_triplane_ns.procedural.primitives import AXES, Primitive


def _pattern_coordinates(prim: Primitive, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Hit points relative to the primitive's ``lo`` corner, with the coordinate along an axis-aligned normal set
    to 0: a flat face (box side, cylinder cap) shows a 2D pattern that does not depend on rounding of its plane."""
    coords = points - np.asarray(prim.lo)
    coords[np.abs(normals) > 1.0 - 1e-9] = 0.0
    return coords


def surface_colors(prim: Primitive, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Base (unlit) colours (M, 3) of hit points (M, 3) with outward unit normals (M, 3) on ``prim``."""
    lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
    colors = np.empty_like(points)
    colors[:] = prim.color
    if prim.pattern is None:
        return colors
    if prim.pattern == "windows":  # side faces of a box
        axis = np.argmax(np.abs(normals), axis=-1)
        height = hi[2] - lo[2]
        band = (points[:, 2] > lo[2] + 0.2 * height) & (points[:, 2] < hi[2] - 0.15 * height)
        inset_x = (points[:, 0] > lo[0] + 0.05) & (points[:, 0] < hi[0] - 0.05)
        inset_y = (points[:, 1] > lo[1] + 0.04) & (points[:, 1] < hi[1] - 0.04)
        window = band & (axis != 2) & np.where(axis == 0, inset_y, inset_x)
        colors[window] = prim.pattern_color
        return colors
    if prim.pattern == "hub":  # caps of a cylinder
        a = AXES[prim.axis]
        radial = [k for k in range(3) if k != a]
        (c0, c1), r = prim.center, prim.radius
        mid = 0.5 * (lo[a] + hi[a])
        on_cap = np.abs(np.abs(points[:, a] - mid) - 0.5 * (hi[a] - lo[a])) < 1e-7
        inner = (points[:, radial[0]] - c0) ** 2 + (points[:, radial[1]] - c1) ** 2 < (0.55 * r) ** 2
        colors[on_cap & inner] = prim.pattern_color
        return colors
    coords = _pattern_coordinates(prim, points, normals) / prim.pattern_period
    if prim.pattern == "stripes":
        painted = np.floor(2.0 * coords[:, prim.pattern_axis]) % 2 == 1
    elif prim.pattern == "checker":
        painted = np.floor(2.0 * coords).sum(-1) % 2 == 1
    elif prim.pattern == "grain":
        # Stripes across pattern_axis whose phase wanders with the two other coordinates, about 35% painted.
        others = [k for k in range(3) if k != prim.pattern_axis]
        wobble = 0.35 * np.sin(1.7 * coords[:, others[0]] + 0.6) + 0.2 * np.sin(2.9 * coords[:, others[1]] + 1.3)
        painted = (coords[:, prim.pattern_axis] + wobble) % 1.0 < 0.35
    else:
        raise ValueError(f"Unknown pattern {prim.pattern!r}")
    colors[painted] = prim.pattern_color
    return colors
