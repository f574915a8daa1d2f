"""The furniture model, the second embedded family: tables, chairs, chests of drawers, bookcases and stools drawn per
(seed, index) as boxes, cylinders and spheres, in 2 to 3 colours with wood grain, stripes or checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Literal, Tuple

import numpy as np

from latent_triplane_ns.procedural.primitives import Color, Primitive, box, cylinder, hsv_to_rgb, sphere

FurnitureKind = Literal["table", "chair", "cabinet", "shelf", "stool"]
FURNITURE_KINDS: Tuple[FurnitureKind, ...] = ("table", "chair", "cabinet", "shelf", "stool")

_STREAM = 3
"""Third entry of the random generator's seed tuple: the cars draw from (seed, index), the cameras from
(seed, index, 1) and (seed, index, 2), so a piece of furniture shares no random numbers with them."""


@dataclass(frozen=True)
class FurnitureParameters:
    """Everything that defines one piece of furniture. Lengths in world units (x forward: the front of a chair,
    chest or bookcase faces +x; y left; z up); colours are linear RGB in [0, 1]. The piece stands on the plane
    z = floor_z, is centred at the origin and fits in [-0.9, 0.9]^3."""

    seed: int
    index: int
    kind: FurnitureKind
    length: float
    """Extent along x."""
    width: float
    """Extent along y (a stool's seat diameter)."""
    height: float
    """Extent along z, floor to the highest point."""
    floor_z: float
    board: float
    """Thickness of the table top, seat, panels and shelves."""
    leg: float
    """Leg radius (round legs) or half side (square legs)."""
    round_legs: bool
    seat_height: float
    """Chair and stool: top of the seat above the floor; table: height of the lower shelf."""
    count: int
    """Chair: back slats (0: a solid back panel); cabinet: drawer rows; shelf: shelves; stool: legs; table: 4."""
    has_extra: bool
    """Table: a lower shelf; chair: armrests; cabinet: ball feet instead of a plinth; shelf: a back panel; stool: a
    footrest disc."""
    primary_color: Color
    """Frame, top, carcass: wood or paint."""
    primary_pattern: Literal["grain", "stripes", "checker"]
    primary_pattern_color: Color
    secondary_color: Color
    """Legs, cushion, drawer fronts, back panel."""
    secondary_pattern: Literal["stripes", "checker"]
    secondary_pattern_color: Color
    accent_color: Color
    """Knobs, slats, apron, books, footrest."""
    pattern_period: float
    """Period of the stripes, checks and grain (a stripe is half of it)."""


def _wood(rng: np.random.Generator) -> Color:
    return hsv_to_rgb(float(rng.uniform(0.04, 0.11)), float(rng.uniform(0.35, 0.75)), float(rng.uniform(0.35, 0.85)))


def _paint(rng: np.random.Generator) -> Color:
    """A quarter greyscale, otherwise a saturated hue."""
    if rng.random() < 0.25:
        v = float(rng.uniform(0.15, 0.9))
        return (v, v, v)
    return hsv_to_rgb(float(rng.random()), float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.4, 0.95)))


def _tone(color: Color, factor: float) -> Color:
    """The colour darkened (factor < 1) or lightened towards white (factor > 1)."""
    if factor <= 1.0:
        return tuple(c * factor for c in color)
    return tuple(c + (1.0 - c) * (factor - 1.0) for c in color)


def _contrast(color: Color) -> Color:
    """A darker tone of a light colour and a lighter tone of a dark one, so a pattern always shows."""
    return _tone(color, 0.55) if max(color) > 0.6 else _tone(color, 1.5)


# Overall sizes (length, width, height ranges), per kind; every extent stays within 1.7.
_SIZES: Dict[str, Tuple[Tuple[float, float], Tuple[float, float], Tuple[float, float]]] = {
    "table": ((1.2, 1.65), (0.7, 1.0), (0.65, 0.95)),
    "chair": ((0.85, 1.05), (0.85, 1.05), (1.4, 1.7)),
    "cabinet": ((0.5, 0.7), (1.0, 1.6), (0.8, 1.4)),
    "shelf": ((0.4, 0.55), (0.9, 1.4), (1.25, 1.65)),
    "stool": ((0.9, 1.2), (0.9, 1.2), (1.1, 1.5)),
}


def sample_furniture(seed: int, index: int) -> FurnitureParameters:
    """Draws the parameters of piece ``index`` of the furniture collection ``seed``.

    The draw depends only on ``(seed, index)``, so scene k is the same whatever the number of scenes generated.
    """
    rng = np.random.default_rng((seed, index, _STREAM))
    kind = FURNITURE_KINDS[int(rng.integers(len(FURNITURE_KINDS)))]
    (l0, l1), (w0, w1), (h0, h1) = _SIZES[kind]
    length, width, height = (float(rng.uniform(a, b)) for a, b in ((l0, l1), (w0, w1), (h0, h1)))
    if kind == "stool":
        width = length  # round seat
    board = float(rng.uniform(0.04, 0.08))
    leg = float(rng.uniform(0.03, 0.055))
    round_legs = bool(rng.random() < 0.5)
    if kind == "chair":
        seat_height, count = height * float(rng.uniform(0.45, 0.55)), int(rng.choice([0, 3, 4, 5]))
    elif kind == "stool":
        seat_height, count = height, int(rng.choice([3, 4]))
    elif kind == "cabinet":
        seat_height, count = 0.0, int(rng.integers(2, 6))
    elif kind == "shelf":
        seat_height, count = 0.0, int(rng.integers(2, 5))
    else:
        seat_height, count = height * float(rng.uniform(0.2, 0.3)), 4
    has_extra = bool(rng.random() < 0.5)

    primary = _wood(rng) if rng.random() < 0.55 else _paint(rng)
    primary_pattern = ("grain", "stripes", "checker")[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
    secondary, accent = _paint(rng), _paint(rng)
    if rng.random() < 0.3:
        accent = _tone(primary, float(rng.uniform(0.4, 0.6)))  # two colours: the accent is a dark tone of the frame
    secondary_pattern = ("stripes", "checker")[int(rng.integers(2))]
    return FurnitureParameters(
        seed=seed,
        index=index,
        kind=kind,
        length=length,
        width=width,
        height=height,
        floor_z=-0.5 * height,
        board=board,
        leg=leg,
        round_legs=round_legs,
        seat_height=seat_height,
        count=count,
        has_extra=has_extra,
        primary_color=primary,
        primary_pattern=primary_pattern,
        primary_pattern_color=_contrast(primary) if primary_pattern != "checker" else secondary,
        secondary_color=secondary,
        secondary_pattern=secondary_pattern,
        secondary_pattern_color=_contrast(secondary),
        accent_color=accent,
        pattern_period=float(rng.uniform(0.09, 0.18)),
    )


def _material(p: FurnitureParameters, part: str, pattern_axis: int = 0) -> Dict[str, object]:
    """Colour and pattern keywords of the frame material (`part` "primary") or the second one ("secondary"); wood
    grain runs along ``pattern_axis``'s boards."""
    return dict(
        color=getattr(p, f"{part}_color"),
        pattern=getattr(p, f"{part}_pattern"),
        pattern_color=getattr(p, f"{part}_pattern_color"),
        pattern_period=p.pattern_period,
        pattern_axis=pattern_axis,
    )


def _leg(p: FurnitureParameters, x: float, y: float, z0: float, z1: float, **material: object) -> Primitive:
    if p.round_legs:
        return cylinder((x, y, z0), "z", z1 - z0, p.leg, **material)
    return box((x - p.leg, y - p.leg, z0), (x + p.leg, y + p.leg, z1), **material)


def _table(p: FurnitureParameters, rng: np.random.Generator) -> List[Primitive]:
    hl, hw, fz, top = 0.5 * p.length, 0.5 * p.width, p.floor_z, p.floor_z + p.height
    inset = p.leg + float(rng.uniform(0.03, 0.1))
    lx, ly = hl - inset, hw - inset
    prims = [
        box((-hl, -hw, top - p.board), (hl, hw, top), **_material(p, "primary", pattern_axis=1)),
        box((-lx, -ly, top - p.board - 0.08), (lx, ly, top - p.board), color=p.accent_color),  # apron
    ]
    prims += [_leg(p, sx * lx, sy * ly, fz, top - p.board, color=p.secondary_color) for sx in (-1, 1) for sy in (-1, 1)]
    if p.has_extra:
        z = fz + p.seat_height
        prims.append(box((-lx, -ly, z - 0.6 * p.board), (lx, ly, z), **_material(p, "secondary", pattern_axis=0)))
    return prims


def _chair(p: FurnitureParameters, rng: np.random.Generator) -> List[Primitive]:
    hl, hw, fz, seat = 0.5 * p.length, 0.5 * p.width, p.floor_z, p.floor_z + p.seat_height
    top = p.floor_z + p.height
    inset = p.leg + 0.03
    lx, ly = hl - inset, hw - inset
    prims = [
        box((-hl, -hw, seat - p.board), (hl, hw, seat), **_material(p, "primary", pattern_axis=1)),
        box(
            (-hl + 0.06, -hw + 0.06, seat),
            (hl - 0.04, hw - 0.06, seat + 0.06),
            **_material(p, "secondary", pattern_axis=1),
        ),
    ]
    for sy in (-1, 1):
        prims.append(_leg(p, lx, sy * ly, fz, seat - p.board, color=p.primary_color))
        prims.append(_leg(p, -lx, sy * ly, fz, top, color=p.primary_color))  # rear legs carry the back
    rail = float(rng.uniform(0.08, 0.14))
    back_x = (-lx - 0.5 * p.leg, -lx + 0.5 * p.leg)
    prims.append(
        box((back_x[0], -ly, top - rail), (back_x[1], ly, top - 0.01), **_material(p, "primary", pattern_axis=1))
    )
    if p.count == 0:
        prims.append(
            box((back_x[0], -ly, seat + 0.1), (back_x[1], ly, top - rail), **_material(p, "secondary", pattern_axis=2))
        )
    else:
        slat = 0.5 * (2.0 * ly) / (2 * p.count + 1)
        for k in range(p.count):
            y = -ly + (2 * k + 1.5) * slat
            prims.append(
                box(
                    (back_x[0], y - 0.5 * slat, seat + 0.06),
                    (back_x[1], y + 0.5 * slat, top - rail),
                    color=p.accent_color,
                )
            )
    if p.has_extra:
        arm_z = seat + float(rng.uniform(0.2, 0.28))
        for sy in (-1, 1):
            y = sy * (hw - 0.04)
            prims.append(box((-lx, y - 0.04, arm_z - 0.04), (hl, y + 0.04, arm_z), color=p.accent_color))
            prims.append(cylinder((hl - 0.06, y, seat), "z", arm_z - 0.04 - seat, 0.025, color=p.accent_color))
    return prims


def _cabinet(p: FurnitureParameters, rng: np.random.Generator) -> List[Primitive]:
    hl, hw, fz, top = 0.5 * p.length, 0.5 * p.width, p.floor_z, p.floor_z + p.height
    base = float(rng.uniform(0.07, 0.12))
    slab = 0.5 * p.board + 0.015
    prims = [
        box(
            (-hl + 0.02, -hw + 0.02, fz + base),
            (hl - 0.02, hw - 0.02, top - slab),
            **_material(p, "primary", pattern_axis=2),
        ),
        box((-hl, -hw, top - slab), (hl, hw, top), **_material(p, "primary", pattern_axis=1)),
    ]
    if p.has_extra:
        r = 0.5 * base
        prims += [
            sphere((sx * (hl - 0.06), sy * (hw - 0.06), fz + r), r, p.accent_color) for sx in (-1, 1) for sy in (-1, 1)
        ]
    else:
        prims.append(box((-hl + 0.05, -hw + 0.05, fz), (hl - 0.05, hw - 0.05, fz + base), color=p.accent_color))
    columns = 2 if p.width > 1.2 else 1
    front, gap = hl - 0.02, 0.025
    z0, z1 = fz + base + gap, top - slab - gap
    y0, y1 = -hw + 0.02 + gap, hw - 0.02 - gap
    dz, dy = (z1 - z0) / p.count, (y1 - y0) / columns
    knob = float(rng.uniform(0.025, 0.04))
    for row in range(p.count):
        for col in range(columns):
            lo_y, lo_z = y0 + col * dy, z0 + row * dz
            prims.append(
                box(
                    (front, lo_y, lo_z),
                    (front + 0.02, lo_y + dy - gap, lo_z + dz - gap),
                    **_material(p, "secondary", pattern_axis=1),
                )
            )
            prims.append(
                sphere(
                    (front + 0.02 + 0.6 * knob, lo_y + 0.5 * (dy - gap), lo_z + 0.5 * (dz - gap)), knob, p.accent_color
                )
            )
    return prims


def _shelf(p: FurnitureParameters, rng: np.random.Generator) -> List[Primitive]:
    hl, hw, fz, top = 0.5 * p.length, 0.5 * p.width, p.floor_z, p.floor_z + p.height
    t = 0.5 * p.board + 0.01
    frame = _material(p, "primary", pattern_axis=2)
    prims = [
        box((-hl, -hw, fz), (hl, -hw + t, top), **frame),
        box((-hl, hw - t, fz), (hl, hw, top), **frame),
        box((-hl, -hw + t, top - t), (hl, hw - t, top), **_material(p, "primary", pattern_axis=1)),
        box((-hl, -hw + t, fz), (hl, hw - t, fz + 0.08), color=p.accent_color),  # plinth
    ]
    back = -hl + 0.02
    if p.has_extra:
        prims.append(
            box((-hl, -hw + t, fz + 0.08), (back, hw - t, top - t), **_material(p, "secondary", pattern_axis=2))
        )
    bottom = fz + 0.08
    step = (top - t - bottom) / (p.count + 1)
    for k in range(1, p.count + 1):
        z = bottom + k * step
        prims.append(box((-hl, -hw + t, z - t), (hl, hw - t, z), **_material(p, "primary", pattern_axis=1)))
    # Books: a run of upright boxes on each shelf, in tones of the secondary and accent colours; sometimes a ball.
    for k in range(p.count + 1):
        floor = bottom + k * step
        ceiling = floor + step - t
        y = -hw + t + float(rng.uniform(0.0, 0.25)) * (p.width - 2 * t)
        end = y + float(rng.uniform(0.3, 0.55)) * (p.width - 2 * t)
        while y < end:
            w = float(rng.uniform(0.06, 0.12))
            h = (ceiling - floor) * float(rng.uniform(0.6, 0.92))
            depth = (hl - back) * float(rng.uniform(0.7, 0.95))
            color = _tone(p.secondary_color if rng.random() < 0.5 else p.accent_color, float(rng.uniform(0.75, 1.25)))
            prims.append(box((back, y, floor), (back + depth, y + w, floor + h), color))
            y += w + 0.005
        if rng.random() < 0.5 and end + 0.1 < hw - t:
            r = min(0.5 * (ceiling - floor) * 0.8, 0.5 * (hw - t - end), 0.5 * (hl - back)) * 0.9
            prims.append(sphere((0.5 * (back + hl), 0.5 * (end + hw - t), floor + r), r, p.accent_color))
    return prims


def _stool(p: FurnitureParameters, rng: np.random.Generator) -> List[Primitive]:
    radius, fz, top = 0.5 * p.width, p.floor_z, p.floor_z + p.height
    cushion = float(rng.uniform(0.04, 0.07))
    seat = top - cushion
    prims = [
        cylinder((0.0, 0.0, seat - p.board), "z", p.board, radius, **_material(p, "primary", pattern_axis=0)),
        cylinder((0.0, 0.0, seat), "z", cushion, 0.88 * radius, **_material(p, "secondary", pattern_axis=0)),
    ]
    turn = float(rng.uniform(0.0, 2.0 * math.pi))
    leg_radius = 0.68 * radius
    for k in range(p.count):
        angle = turn + 2.0 * math.pi * k / p.count
        x, y = leg_radius * math.cos(angle), leg_radius * math.sin(angle)
        prims.append(_leg(p, x, y, fz, seat - p.board, **_material(p, "primary", pattern_axis=2)))
    if p.has_extra:
        z = fz + float(rng.uniform(0.25, 0.4)) * p.height
        prims.append(cylinder((0.0, 0.0, z), "z", 0.03, leg_radius + p.leg, color=p.accent_color))
    return prims


_BUILDERS: Dict[str, Callable[[FurnitureParameters, np.random.Generator], List[Primitive]]] = {
    "table": _table,
    "chair": _chair,
    "cabinet": _cabinet,
    "shelf": _shelf,
    "stool": _stool,
}


def furniture_primitives(params: FurnitureParameters) -> List[Primitive]:
    """The boxes, cylinders and spheres of a piece of furniture. Details that the parameters leave open (the books
    of a bookcase, the apron's inset) come from their own generator, seeded by (seed, index)."""
    rng = np.random.default_rng((params.seed, params.index, _STREAM, 1))
    return _BUILDERS[params.kind](params, rng)
