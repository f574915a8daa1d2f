"""The parts every procedural family is built from: boxes, cylinders and spheres, their paints, and the fixed lights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Tuple

import numpy as np

# Two directional lights plus ambient; the weights sum to about 1 so a surface facing the key light keeps its colour.
_KEY_LIGHT = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])
_FILL_LIGHT = np.array([-0.6, -0.35, 0.45]) / np.linalg.norm([-0.6, -0.35, 0.45])
_AMBIENT, _KEY_WEIGHT, _FILL_WEIGHT = 0.25, 0.6, 0.2

Color = Tuple[float, float, float]
PatternName = Literal["windows", "hub", "stripes", "checker", "grain"]

AXES = {"x": 0, "y": 1, "z": 2}
"""Cylinder axis names and the world axis index they stand for."""


@dataclass(frozen=True)
class Primitive:
    """An axis-aligned box, a cylinder along a world axis, or a sphere, with a flat colour and an optional surface
    pattern.

    ``lo``/``hi`` are the corners of the box, or of the cylinder's or sphere's bounding box. A cylinder's axis is the
    world axis ``axis`` and passes through ``center``, the cylinder's coordinates on the two other axes in increasing
    order ((x, z) for the default y axis, (x, y) for a vertical cylinder); its caps are the planes at ``lo`` and
    ``hi`` along ``axis``. A sphere is centred in its bounding box with radius ``radius``.

    Patterns, painted with ``pattern_color`` (see ``textures.py``): ``windows`` (framed windows on the side faces of a
    box), ``hub`` (a disc on the caps of a cylinder), ``stripes`` (bands of width ``pattern_period / 2`` across world
    axis ``pattern_axis``), ``checker`` (squares of side ``pattern_period / 2``) and ``grain`` (wavy stripes, like
    wood)."""

    kind: Literal["box", "cylinder", "sphere"]
    lo: Tuple[float, float, float]
    hi: Tuple[float, float, float]
    color: Color
    pattern: PatternName | None = None
    pattern_color: Color = (0.0, 0.0, 0.0)
    center: Tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0
    axis: Literal["x", "y", "z"] = "y"
    pattern_period: float = 0.0
    pattern_axis: int = 0


def box(lo: Tuple[float, float, float], hi: Tuple[float, float, float], color: Color, **pattern: object) -> Primitive:
    """An axis-aligned box from corner ``lo`` to corner ``hi``."""
    return Primitive("box", tuple(lo), tuple(hi), color, **pattern)


def cylinder(
    base: Tuple[float, float, float],
    axis: Literal["x", "y", "z"],
    length: float,
    radius: float,
    color: Color,
    **pattern: object,
) -> Primitive:
    """A cylinder of ``radius`` whose axis runs along world axis ``axis`` from point ``base`` for ``length``."""
    a = AXES[axis]
    lo = [c - radius for c in base]
    hi = [c + radius for c in base]
    lo[a], hi[a] = base[a], base[a] + length
    center = tuple(float(base[k]) for k in range(3) if k != a)
    return Primitive("cylinder", tuple(lo), tuple(hi), color, center=center, radius=radius, axis=axis, **pattern)


def sphere(center: Tuple[float, float, float], radius: float, color: Color, **pattern: object) -> Primitive:
    """A sphere of ``radius`` around ``center``."""
    lo = tuple(c - radius for c in center)
    hi = tuple(c + radius for c in center)
    return Primitive("sphere", lo, hi, color, radius=radius, **pattern)


def hsv_to_rgb(h: float, s: float, v: float) -> Color:
    """HSV in [0, 1] to RGB in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def shade(color: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Lambertian shading of base colours (..., 3) with unit normals (..., 3) under the fixed lights."""
    # Element-wise products rather than matmul: BLAS would start its own threads in every worker process.
    key = np.clip((normal * _KEY_LIGHT).sum(-1), 0.0, None)
    fill = np.clip((normal * _FILL_LIGHT).sum(-1), 0.0, None)
    light = _AMBIENT + _KEY_WEIGHT * key + _FILL_WEIGHT * fill
    return np.clip(np.asarray(color) * light[..., None], 0.0, 1.0)
