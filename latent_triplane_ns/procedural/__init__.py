"""Deterministic procedural car-like objects, their cameras, an analytic ray caster, and collection writing."""

from latent_triplane_ns.procedural.cameras import (
    CAMERA_RADIUS,
    ELEVATION_RANGE_DEG,
    FOV_Y_DEG,
    Intrinsics,
    camera_intrinsics,
    heldout_poses,
    look_at_poses,
    project_points,
    train_poses,
)
from latent_triplane_ns.procedural.cars import (
    CarParameters,
    KeyPoint,
    Primitive,
    car_key_points,
    car_primitives,
    sample_car,
    shade,
)
from latent_triplane_ns.procedural.collection import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    GenerationSummary,
    generate_collection,
    render_scene,
)
from latent_triplane_ns.procedural.raycast import SUPERSAMPLE, render_view

__all__ = [
    "CAMERA_RADIUS",
    "ELEVATION_RANGE_DEG",
    "FOV_Y_DEG",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "SUPERSAMPLE",
    "CarParameters",
    "GenerationSummary",
    "Intrinsics",
    "KeyPoint",
    "Primitive",
    "camera_intrinsics",
    "car_key_points",
    "car_primitives",
    "generate_collection",
    "heldout_poses",
    "look_at_poses",
    "project_points",
    "render_scene",
    "render_view",
    "sample_car",
    "shade",
    "train_poses",
]
