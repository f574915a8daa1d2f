"""The kitchen model, the fourth embedded family: mugs, bottles, vases, teapots and jars drawn per (seed, index) as
boxes, cylinders and spheres in ceramic and glass tones (creams, whites, blues, greens, terracotta, deep browns),
plain or with stripes or checks. Its shapes are round, lathe-like and have handles, spouts and lids: neither cars,
furniture nor toys.

It is a family for evaluation only: no shipped autoencoder is trained on it, so it stands for objects an
autoencoder never saw."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Literal, Tuple

import numpy as np

from latent_triplane_ns.procedural.primitives import AXES, Color, Primitive, box, cylinder, hsv_to_rgb, sphere

KitchenKind = Literal["mug", "bottle", "vase", "teapot", "jar"]
KITCHEN_KINDS: Tuple[KitchenKind, ...] = ("mug", "bottle", "vase", "teapot", "jar")

_STREAM = 5
"""Third entry of the random generator's seed tuple (the toys draw from 4, the furniture from 3, the cameras from 1
and 2), so a kitchen object shares no random numbers with the other families or the cameras."""


@dataclass(frozen=True)
class KitchenParameters:
    """Everything that defines one kitchen object. Lengths in world units (z up; a teapot's spout points to +x and
    its handle to -x, a mug's handle to +y); colours are linear RGB in [0, 1]. The object's bounding box is centred
    at the origin and it fits in [-0.9, 0.9]^3."""

    seed: int
    index: int
    kind: KitchenKind
    height: float
    """Height of the main parts, from the floor to the rim, lip, cap or lid (a knob may add to it)."""
    floor_z: float
    """Where the object stands before it is centred at the origin (`kitchen_primitives`)."""
    radius: float
    """Radius of the body: the mug's, bottle's and jar's cylinder, the vase's widest piece, the teapot's sphere or
    cylinder."""
    neck_radius: float
    """Bottle and vase: radius of the neck; teapot: radius of the spout; mug: thickness of the handle; jar: radius
    of the knob on the lid."""
    count: int
    """Vase: pieces (spheres or cylinders) stacked between the foot and the neck (1-3); the other kinds: 1."""
    handle: Literal["boxes", "bar"]
    """Mug and teapot: a handle of three small boxes (a square loop) or a bar (a flat horizontal cylinder, a disc
    seen from the side); unused by the other kinds."""
    round_body: bool
    """Teapot: a sphere body between a foot ring and a flat lid (else a wide cylinder); bottle: a round shoulder
    (a sphere) between the body and the neck (else a flat one); unused by the other kinds."""
    has_extra: bool
    """Mug: a saucer under it; bottle: a label band around the body; vase: a flared lip; teapot: an upturned tip on
    the spout; jar: a knob on the lid."""
    main_color: Color
    """Glaze of the body (glass for a bottle)."""
    second_color: Color
    """Lid, foot, saucer, label, neck ring."""
    accent_color: Color
    """Knob, cap, the inside of a mug or vase seen through its opening."""
    pattern: Literal["stripes", "checker"] | None
    """Pattern painted on the body (on the label of a bottle); None: plain."""
    pattern_color: Color
    """Colour of the pattern: a dark glaze on a light body, a light one on a dark body."""
    pattern_period: float
    """Period of the stripes and checks (a stripe is half of it)."""


# Hue, saturation and value ranges of the glazes and glass tones.
_TONES: Dict[str, Tuple[Tuple[float, float], Tuple[float, float], Tuple[float, float]]] = {
    "cream": ((0.09, 0.14), (0.12, 0.3), (0.8, 0.93)),
    "white": ((0.08, 0.6), (0.03, 0.08), (0.85, 0.95)),
    "blue": ((0.55, 0.64), (0.35, 0.75), (0.4, 0.85)),
    "green": ((0.22, 0.42), (0.25, 0.6), (0.35, 0.75)),
    "terracotta": ((0.02, 0.06), (0.5, 0.75), (0.55, 0.8)),
    "brown": ((0.04, 0.09), (0.5, 0.8), (0.18, 0.38)),
}
_VASE_RISE = {1: 1.6, 2: 2.72, 3: 3.7}
"""The most a vase's pieces can rise, in units of its radius, per number of pieces (`_vase`)."""

_LIGHT_TONES = ("cream", "white")
_DARK_TONES = ("blue", "green", "terracotta", "brown")
_GLASS_TONES = ("green", "brown", "blue", "white")


def _tone(rng: np.random.Generator, names: Tuple[str, ...] = tuple(_TONES)) -> Color:
    """A ceramic or glass colour of one of the ``names`` tones."""
    (h0, h1), (s0, s1), (v0, v1) = _TONES[names[int(rng.integers(len(names)))]]
    return hsv_to_rgb(float(rng.uniform(h0, h1)), float(rng.uniform(s0, s1)), float(rng.uniform(v0, v1)))


def sample_kitchen(seed: int, index: int) -> KitchenParameters:
    """Draws the parameters of object ``index`` of the kitchen collection ``seed``; the draw depends only on
    ``(seed, index)``, so scene k is the same whatever the number of scenes generated."""
    rng = np.random.default_rng((seed, index, _STREAM))
    kind = KITCHEN_KINDS[int(rng.integers(len(KITCHEN_KINDS)))]
    round_body = bool(rng.random() < 0.5)
    count = int(rng.integers(1, 4)) if kind == "vase" else 1
    if kind == "mug":
        height, radius = float(rng.uniform(0.9, 1.15)), float(rng.uniform(0.3, 0.4))
        neck = float(rng.uniform(0.05, 0.08))
    elif kind == "bottle":
        height, radius = float(rng.uniform(1.35, 1.6)), float(rng.uniform(0.2, 0.3))
        neck = radius * float(rng.uniform(0.3, 0.45))
    elif kind == "vase":
        # The pieces rise by at most _VASE_RISE[count] times the radius (`_vase`); they leave the neck at least
        # 0.15 of the height between the foot (up to 8%) and the lip (up to 6%).
        height = float(rng.uniform(1.3, 1.55))
        radius = float(rng.uniform(0.75, 1.0)) * min(0.42, 0.71 * height / _VASE_RISE[count])
        neck = radius * float(rng.uniform(0.22, 0.38))
    elif kind == "teapot":
        height, neck = float(rng.uniform(0.85, 1.0)), float(rng.uniform(0.055, 0.08))
        # A sphere body spans the foot (6% of the height), 0.85 of its radius below its centre and its radius plus
        # 0.03 above (the lid); a cylinder body's radius is drawn on its own.
        radius = (0.94 * height - 0.03) / 1.85 if round_body else float(rng.uniform(0.38, 0.45))
    else:  # jar
        height, radius = float(rng.uniform(0.95, 1.25)), float(rng.uniform(0.36, 0.45))
        neck = float(rng.uniform(0.05, 0.08))
    main = _tone(rng, _GLASS_TONES) if kind == "bottle" else _tone(rng)
    second, accent = _tone(rng), _tone(rng, _DARK_TONES)
    light_body = sum(main) / 3.0 > 0.55
    pattern_color = _tone(rng, _DARK_TONES if light_body else _LIGHT_TONES)
    return KitchenParameters(
        seed=seed,
        index=index,
        kind=kind,
        height=height,
        floor_z=-0.5 * height,
        radius=radius,
        neck_radius=neck,
        count=count,
        handle=("boxes", "bar")[int(rng.integers(2))],
        round_body=round_body,
        has_extra=bool(rng.random() < 0.5),
        main_color=main,
        second_color=second,
        accent_color=accent,
        pattern=(None, "stripes", "checker")[int(rng.integers(3))],
        pattern_color=pattern_color,
        pattern_period=float(rng.uniform(0.08, 0.16)),
    )


def _glazed(p: KitchenParameters, color: Color | None = None) -> Dict[str, object]:
    """The main colour (or ``color``) with the object's pattern, its bands across the vertical axis."""
    paint: Dict[str, object] = dict(color=p.main_color if color is None else color)
    if p.pattern is not None:
        paint.update(pattern=p.pattern, pattern_color=p.pattern_color, pattern_period=p.pattern_period, pattern_axis=2)
    return paint


def _handle(
    p: KitchenParameters, side: str, attach: float, z0: float, z1: float, reach: float, thick: float
) -> List[Primitive]:
    """A handle on the ``side`` ("+y" or "-x") of a body whose surface is at distance ``attach`` from the vertical
    axis, from height ``z0`` to ``z1``, sticking out ``reach`` beyond it; ``thick`` is the thickness of its parts."""
    a = AXES[side[1]]
    sign = 1.0 if side[0] == "+" else -1.0
    inner, outer = attach - 0.03, attach + reach  # the inner end is sunk into the body

    def part(r0: float, r1: float, w: float, za: float, zb: float) -> Primitive:
        """A box from distance r0 to r1 on the handle's side, w wide across it, from height za to zb."""
        lo, hi = [-w, -w, za], [w, w, zb]
        lo[a], hi[a] = sorted((sign * r0, sign * r1))
        return box(tuple(lo), tuple(hi), color=p.main_color)

    if p.handle == "boxes":
        return [
            part(inner, outer, 0.7 * thick, z1 - thick, z1),  # upper arm
            part(inner, outer, 0.7 * thick, z0, z0 + thick),  # lower arm
            part(outer - thick, outer, 0.7 * thick, z0, z1),  # grip
        ]
    # A disc across the handle's plane, its centre on the body's surface: half of it sticks out.
    r = min(0.5 * (z1 - z0), reach)
    centre = [0.0, 0.0, 0.5 * (z0 + z1)]
    centre[a] = sign * attach
    axis = "x" if side[1] == "y" else "y"
    centre[AXES[axis]] = -0.5 * thick
    return [cylinder(tuple(centre), axis, thick, r, color=p.main_color)]


def _mug(p: KitchenParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, r = p.floor_z, p.radius
    prims = []
    if p.has_extra:  # a saucer
        saucer = 0.035
        prims.append(cylinder((0.0, 0.0, fz), "z", saucer, r * float(rng.uniform(1.35, 1.55)), color=p.second_color))
        fz += saucer
    top = p.floor_z + p.height
    prims.append(cylinder((0.0, 0.0, fz), "z", top - fz, r, **_glazed(p)))
    prims.append(cylinder((0.0, 0.0, top), "z", 0.004, 0.88 * r, color=p.accent_color))  # the inside, past the rim
    body = top - fz
    z0, z1 = fz + float(rng.uniform(0.15, 0.25)) * body, top - float(rng.uniform(0.1, 0.18)) * body
    return prims + _handle(p, "+y", r, z0, z1, float(rng.uniform(0.18, 0.26)), p.neck_radius)


def _bottle(p: KitchenParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, r, rn = p.floor_z, p.floor_z + p.height, p.radius, p.neck_radius
    body_top = fz + float(rng.uniform(0.5, 0.62)) * p.height
    cap = float(rng.uniform(0.05, 0.08)) * p.height
    shoulder = r if p.round_body else 0.0
    glass = dict(color=p.main_color) if p.has_extra else _glazed(p)
    prims = [cylinder((0.0, 0.0, fz), "z", body_top - fz, r, **glass)]
    if p.round_body:
        prims.append(sphere((0.0, 0.0, body_top), 0.999 * r, color=p.main_color))
    else:  # a flat shoulder: a short, narrower step
        prims.append(cylinder((0.0, 0.0, body_top), "z", 0.04, 0.6 * r, color=p.main_color))
        shoulder = 0.04
    neck_base = body_top + 0.5 * shoulder
    prims.append(cylinder((0.0, 0.0, neck_base), "z", top - cap - neck_base, rn, color=p.main_color))
    prims.append(cylinder((0.0, 0.0, top - cap), "z", cap, 1.2 * rn, color=p.accent_color))
    if p.has_extra:  # a label band around the body
        band = (body_top - fz) * float(rng.uniform(0.35, 0.55))
        z = fz + 0.5 * (body_top - fz - band)
        prims.append(cylinder((0.0, 0.0, z), "z", band, 1.01 * r, **_glazed(p, p.second_color)))
    return prims


def _vase(p: KitchenParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, r = p.floor_z, p.floor_z + p.height, p.radius
    foot, lip = float(rng.uniform(0.05, 0.08)) * p.height, float(rng.uniform(0.04, 0.06)) * p.height
    lip_r = p.neck_radius * (float(rng.uniform(1.4, 1.8)) if p.has_extra else 1.15)
    # The pieces: the widest first (a sphere sunk a little into the foot), then narrower spheres or cylinders, up
    # the vertical axis, each no wider than the one below where they meet (a lathe's profile, no ledges) and wider
    # than the neck. Piece k rises by `rises[k]` times its radius above the top of the one below.
    shapes = ["sphere"] + [("sphere", "cylinder")[int(rng.integers(2))] for _ in range(p.count - 1)]
    radii, rises = [r], [1.6]
    for shape in shapes[1:]:
        if shape == "sphere":
            radii.append(max(radii[-1] * float(rng.uniform(0.55, 0.8)), 1.1 * p.neck_radius / 0.6))
            rises.append(1.4)
        else:  # as wide as the piece below at its top (0.6 of a sphere's radius), or tapering
            below = radii[-1] * (0.6 if shapes[len(radii) - 1] == "sphere" else 1.0)
            radii.append(max(below * float(rng.uniform(0.8, 0.97)), 1.1 * p.neck_radius))
            rises.append(float(rng.uniform(0.6, 1.2)))
    prims = [cylinder((0.0, 0.0, fz), "z", foot, 0.7 * radii[0], color=p.second_color)]
    z = fz + foot
    for k, (rad, shape, rise) in enumerate(zip(radii, shapes, rises, strict=True)):
        paint = _glazed(p) if k == 0 else dict(color=p.main_color)
        if shape == "sphere":  # its centre 0.8 (the first) or 0.6 radii above the piece below's top
            prims.append(sphere((0.0, 0.0, z + (rise - 0.8) * rad), rad, **paint))
        else:
            prims.append(cylinder((0.0, 0.0, z - 0.02), "z", rise * rad + 0.02, rad, **paint))
        z += rise * rad
    neck_base = z - 0.02
    prims.append(cylinder((0.0, 0.0, neck_base), "z", top - lip - neck_base, p.neck_radius, color=p.main_color))
    prims.append(cylinder((0.0, 0.0, top - lip), "z", lip, lip_r, color=p.second_color))
    prims.append(cylinder((0.0, 0.0, top), "z", 0.004, 0.7 * p.neck_radius, color=p.accent_color))  # the opening
    return prims


def _teapot(p: KitchenParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, r = p.floor_z, p.floor_z + p.height, p.radius
    if p.round_body:  # a sphere, its bottom hidden in a foot ring and its top under a flat lid
        foot = 0.06 * p.height
        centre = fz + foot + 0.85 * r
        prims = [
            cylinder((0.0, 0.0, fz), "z", foot, 0.6 * r, color=p.second_color),
            sphere((0.0, 0.0, centre), r, **_glazed(p)),
            cylinder((0.0, 0.0, centre + 0.72 * r), "z", top - (centre + 0.72 * r), 0.7 * r, color=p.second_color),
        ]
        lid_r, mid, spout_z = 0.7 * r, centre, centre - 0.1 * r
    else:  # a wide cylinder with a lid on top
        lid = float(rng.uniform(0.05, 0.08)) * p.height
        prims = [
            cylinder((0.0, 0.0, fz), "z", top - lid - fz, r, **_glazed(p)),
            cylinder((0.0, 0.0, top - lid), "z", lid, 0.75 * r, color=p.second_color),
        ]
        lid_r, mid, spout_z = 0.75 * r, fz + 0.5 * (top - lid - fz), fz + 0.35 * (top - lid - fz)
    knob = float(rng.uniform(0.2, 0.3)) * lid_r
    prims.append(sphere((0.0, 0.0, top + 0.6 * knob), knob, color=p.accent_color))
    # The spout: a thin horizontal cylinder along +x, from inside the body to past its surface.
    spout = float(rng.uniform(0.2, 0.3))
    prims.append(cylinder((0.5 * r, 0.0, spout_z), "x", 0.5 * r + spout, p.neck_radius, color=p.main_color))
    if p.has_extra:  # an upturned tip
        tip = float(rng.uniform(0.08, 0.14))
        prims.append(cylinder((r + spout - p.neck_radius, 0.0, spout_z), "z", tip, p.neck_radius, color=p.main_color))
    half = float(rng.uniform(0.3, 0.45)) * r
    return prims + _handle(p, "-x", 0.9 * r, mid - half, mid + half, float(rng.uniform(0.15, 0.22)), 0.06)


def _jar(p: KitchenParameters, rng: np.random.Generator) -> List[Primitive]:
    fz, top, r = p.floor_z, p.floor_z + p.height, p.radius
    lid = float(rng.uniform(0.07, 0.1)) * p.height
    ring = float(rng.uniform(0.04, 0.07)) * p.height
    body_top = top - lid - ring
    prims = [
        cylinder((0.0, 0.0, fz), "z", body_top - fz, r, **_glazed(p)),
        cylinder((0.0, 0.0, body_top), "z", ring, 0.9 * r, color=p.main_color),  # the neck under the lid
        cylinder((0.0, 0.0, top - lid), "z", lid, float(rng.uniform(0.98, 1.04)) * r, color=p.second_color),
    ]
    if p.has_extra:  # a knob on the lid
        prims.append(sphere((0.0, 0.0, top + 0.6 * p.neck_radius), p.neck_radius, color=p.accent_color))
    return prims


_BUILDERS: Dict[KitchenKind, Callable[[KitchenParameters, np.random.Generator], List[Primitive]]] = {
    "mug": _mug,
    "bottle": _bottle,
    "vase": _vase,
    "teapot": _teapot,
    "jar": _jar,
}


def kitchen_primitives(params: KitchenParameters) -> List[Primitive]:
    """The boxes, cylinders and spheres of a kitchen object, moved so that their bounding box is centred at the
    origin. Details the parameters leave open come from their own generator, seeded by (seed, index)."""
    rng = np.random.default_rng((params.seed, params.index, _STREAM, 1))
    return _centred(_BUILDERS[params.kind](params, rng))


def _centred(prims: List[Primitive]) -> List[Primitive]:
    """The primitives moved so that their bounds are centred at the origin (a handle or a spout sticks out on one
    side, so the object is moved across as well as up or down)."""
    lo = np.min([p.lo for p in prims], axis=0)
    hi = np.max([p.hi for p in prims], axis=0)
    shift = [float(s) for s in -0.5 * (lo + hi)]

    def moved(p: Primitive) -> Primitive:
        new_lo = tuple(c + s for c, s in zip(p.lo, shift, strict=True))
        new_hi = tuple(c + s for c, s in zip(p.hi, shift, strict=True))
        center = p.center
        if p.kind == "cylinder":  # its centre's coordinates are those of the two axes other than its own
            others = [k for k in range(3) if k != AXES[p.axis]]
            center = (center[0] + shift[others[0]], center[1] + shift[others[1]])
        return replace(p, lo=new_lo, hi=new_hi, center=center)

    return [moved(p) for p in prims]
