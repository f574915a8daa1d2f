"""The toy model, the third embedded family: robots, rockets, snowmen and stacking towers drawn per (seed, index) as
boxes, cylinders and spheres in bright plastic colours with stripes or checks. Its shapes (round, stacked, thin
parts sticking out) are neither cars nor furniture, so it can serve as a family that an autoencoder never saw."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Literal, Tuple

import numpy as np

from latent_triplane_ns.procedural.primitives import Color, Primitive, box, cylinder, hsv_to_rgb, sphere

ToyKind = Literal["robot", "rocket", "snowman", "tower"]
TOY_KINDS: Tuple[ToyKind, ...] = ("robot", "rocket", "snowman", "tower")

_STREAM = 4
"""Third entry of the random generator's seed tuple (the furniture draws from 3, the cameras from 1 and 2), so a toy
shares no random numbers with the other families or the cameras."""


@dataclass(frozen=True)
class ToyParameters:
    """Everything that defines one toy. Lengths in world units (z up); colours are linear RGB in [0, 1]. The toy
    is centred at the origin and fits in [-0.9, 0.9]^3."""

    seed: int
    index: int
    kind: ToyKind
    height: float
    """Height of the main parts (antennae, a hat or a nose may add to it)."""
    floor_z: float
    """Where the toy stands before it is centred on z = 0 (`toy_primitives`)."""
    girth: float
    """Half-width of the main body (robot torso, rocket and tower radius, snowman's lowest ball)."""
    count: int
    """Robot: antennae (0-2); rocket: fins (3 or 4); snowman: balls (2 or 3); tower: stacked pieces (3-6)."""
    main_color: Color
    second_color: Color
    accent_color: Color
    pattern: Literal["stripes", "checker"]
    pattern_color: Color
    pattern_period: float


def _plastic(rng: np.random.Generator) -> Color:
    """A saturated, bright toy colour."""
    return hsv_to_rgb(float(rng.random()), float(rng.uniform(0.6, 0.95)), float(rng.uniform(0.65, 0.95)))


def sample_toy(seed: int, index: int) -> ToyParameters:
    """Draws the parameters of toy ``index`` of the toy collection ``seed``; the draw depends only on ``(seed,
    index)``, so scene k is the same whatever the number of scenes generated."""
    rng = np.random.default_rng((seed, index, _STREAM))
    kind = TOY_KINDS[int(rng.integers(len(TOY_KINDS)))]
    height = float(rng.uniform(1.25, 1.5))
    girth = float(rng.uniform(0.3, 0.45))
    count = {
        "robot": int(rng.integers(0, 3)),
        "rocket": int(rng.choice([3, 4])),
        "snowman": int(rng.choice([2, 3])),
        "tower": int(rng.integers(3, 7)),
    }[kind]
    main, second, accent = _plastic(rng), _plastic(rng), _plastic(rng)
    return ToyParameters(
        seed=seed,
        index=index,
        kind=kind,
        height=height,
        floor_z=-0.5 * height,
        girth=girth,
        count=count,
        main_color=main,
        second_color=second,
        accent_color=accent,
        pattern=("stripes", "checker")[int(rng.integers(2))],
        pattern_color=tuple(0.25 * c for c in main) if rng.random() < 0.5 else (0.95, 0.95, 0.9),
        pattern_period=float(rng.uniform(0.1, 0.2)),
    )


def _patterned(p: ToyParameters, axis: int = 2) -> Dict[str, object]:
    """The main colour with the toy's pattern, its bands across world axis ``axis``."""
    return dict(
        color=p.main_color,
        pattern=p.pattern,
        pattern_color=p.pattern_color,
        pattern_period=p.pattern_period,
        pattern_axis=axis,
    )


def _robot(p: ToyParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, g = p.floor_z, p.floor_z + p.height, p.girth
    legs_top = fz + 0.3 * p.height
    head = float(rng.uniform(0.12, 0.18)) * p.height
    torso_top = top - head - 0.04
    depth = g * float(rng.uniform(0.6, 0.9))
    leg = 0.35 * g
    prims = [
        box((-depth, -g, legs_top), (depth, g, torso_top), **_patterned(p)),
        box((-0.8 * depth, -0.7 * g, torso_top + 0.04), (0.8 * depth, 0.7 * g, top), color=p.second_color),
        box((-0.8 * depth, -0.7 * g, torso_top), (0.8 * depth, 0.7 * g, torso_top + 0.04), color=p.accent_color),
    ]
    prims += [
        box((-leg, s * 0.55 * g - leg, fz), (leg, s * 0.55 * g + leg, legs_top), color=p.second_color) for s in (-1, 1)
    ]
    arm = float(rng.uniform(0.25, 0.4)) * p.height
    prims += [
        cylinder((0.0, s * (g + 0.06), torso_top - 0.05 - arm), "z", arm, 0.06, color=p.accent_color) for s in (-1, 1)
    ]
    eye_z = top - 0.45 * head
    prims += [sphere((0.8 * depth, s * 0.3 * g, eye_z), 0.05, color=p.accent_color) for s in (-1, 1)]
    for k in range(p.count):  # antennae: a stalk and a ball
        y = (k - 0.5 * (p.count - 1)) * 0.6 * g
        prims.append(cylinder((0.0, y, top), "z", 0.1, 0.015, color=p.accent_color))
        prims.append(sphere((0.0, y, top + 0.12), 0.035, color=p.second_color))
    return prims


def _rocket(p: ToyParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, r = p.floor_z, p.floor_z + p.height, 0.75 * p.girth
    nose = r
    body_top = top - nose
    fin_top = fz + float(rng.uniform(0.25, 0.4)) * p.height
    prims = [
        cylinder((0.0, 0.0, fz + 0.05), "z", body_top - fz - 0.05, r, **_patterned(p)),
        sphere((0.0, 0.0, body_top), nose * 0.999, color=p.second_color),
        cylinder((0.0, 0.0, fz), "z", 0.05, 0.7 * r, color=p.accent_color),  # nozzle
    ]
    span, thick = float(rng.uniform(0.15, 0.25)), 0.03
    if p.count == 4:
        prims += [box((r - 0.02, -thick, fz), (r + span, thick, fin_top), color=p.second_color)]
        prims += [box((-r - span, -thick, fz), (-r + 0.02, thick, fin_top), color=p.second_color)]
        prims += [box((-thick, r - 0.02, fz), (thick, r + span, fin_top), color=p.second_color)]
        prims += [box((-thick, -r - span, fz), (thick, -r + 0.02, fin_top), color=p.second_color)]
    else:  # three fins, along the axes' directions that a box can take: +x, -y, +y
        prims += [box((r - 0.02, -thick, fz), (r + span, thick, fin_top), color=p.second_color)]
        prims += [box((-thick, r - 0.02, fz), (thick, r + span, fin_top), color=p.second_color)]
        prims += [box((-thick, -r - span, fz), (thick, -r + 0.02, fin_top), color=p.second_color)]
    window_z = fz + 0.65 * (body_top - fz)
    prims.append(sphere((r - 0.02, 0.0, window_z), 0.35 * r, color=p.accent_color))
    return prims


def _snowman(p: ToyParameters, rng: np.random.Generator) -> List[Primitive]:
    fz = p.floor_z
    shrink = float(rng.uniform(0.6, 0.75))
    radii = [0.9 * p.girth * shrink**k for k in range(p.count)]
    hat = p.height - sum(2 * r for r in radii) * 0.9
    prims, z = [], fz
    for k, radius in enumerate(radii):
        centre = z + radius
        paint = _patterned(p) if k == 0 else dict(color=p.main_color if k % 2 == 0 else p.second_color)
        prims.append(sphere((0.0, 0.0, centre), radius, **paint))
        z = centre + 0.8 * radius
    head, head_z = radii[-1], z - 0.8 * radii[-1]
    prims.append(cylinder((0.0, 0.0, head_z + 0.8 * head), "z", max(hat, 0.08), 0.7 * head, color=p.accent_color))
    prims.append(cylinder((0.95 * head, 0.0, head_z), "x", 0.15, 0.03, color=p.second_color))  # nose, along +x
    return prims


def _tower(p: ToyParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, g = p.floor_z, p.girth
    piece = p.height / p.count
    prims = []
    for k in range(p.count):
        z0 = fz + k * piece
        width = g * (1.0 - 0.12 * k)
        color = (p.main_color, p.second_color, p.accent_color)[k % 3]
        if rng.random() < 0.5:
            paint = _patterned(p) if k == 0 else dict(color=color)
            prims.append(cylinder((0.0, 0.0, z0), "z", piece, width, **paint))
        else:
            paint = _patterned(p, axis=0) if k == 0 else dict(color=color)
            prims.append(box((-width, -width, z0), (width, width, z0 + piece), **paint))
    return prims


_BUILDERS: Dict[ToyKind, Callable[[ToyParameters, np.random.Generator], List[Primitive]]] = {
    "robot": _robot,
    "rocket": _rocket,
    "snowman": _snowman,
    "tower": _tower,
}


def toy_primitives(params: ToyParameters) -> List[Primitive]:
    """The boxes, cylinders and spheres of a toy. Details the parameters leave open come from their own generator,
    seeded by (seed, index)."""
    rng = np.random.default_rng((params.seed, params.index, _STREAM, 1))
    return _centred(_BUILDERS[params.kind](params, rng))


def _centred(prims: List[Primitive]) -> List[Primitive]:
    """The primitives moved along z so that their bounds are centred on z = 0."""
    shift = -0.5 * (min(p.lo[2] for p in prims) + max(p.hi[2] for p in prims))

    def moved(p: Primitive) -> Primitive:
        lo, hi = (p.lo[0], p.lo[1], p.lo[2] + shift), (p.hi[0], p.hi[1], p.hi[2] + shift)
        center = p.center
        if p.kind == "cylinder" and p.axis != "z":  # its centre's second coordinate is z
            center = (center[0], center[1] + shift)
        return replace(p, lo=lo, hi=hi, center=center)

    return [moved(p) for p in prims]
