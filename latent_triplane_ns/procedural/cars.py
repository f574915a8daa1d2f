"""The car model: parameters drawn per (seed, index), its boxes and cylinders, key points and paints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from latent_triplane_ns.procedural.primitives import Primitive, hsv_to_rgb, shade

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


def _paint(rng: np.random.Generator) -> Tuple[float, float, float]:
    """A plausible car paint: a quarter greyscale (black to white), otherwise a saturated hue."""
    if rng.random() < 0.25:
        v = float(rng.uniform(0.12, 0.95))
        return (v, v, v)
    return hsv_to_rgb(float(rng.random()), float(rng.uniform(0.45, 0.9)), float(rng.uniform(0.45, 0.95)))


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
