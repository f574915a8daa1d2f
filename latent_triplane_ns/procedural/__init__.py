"""Deterministic procedural objects (cars, furniture as a second family, toys as a third and kitchen objects as a
fourth), their cameras, an analytic ray caster, and collection writing."""

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
    car_key_points,
    car_primitives,
    sample_car,
)
from latent_triplane_ns.procedural.collection import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    GenerationSummary,
    generate_collection,
    render_scene,
)
from latent_triplane_ns.procedural.families import DEFAULT_FAMILY, FAMILIES, Family, sample_object
from latent_triplane_ns.procedural.furniture import FurnitureParameters, furniture_primitives, sample_furniture
from latent_triplane_ns.procedural.kitchen import KitchenParameters, kitchen_primitives, sample_kitchen
from latent_triplane_ns.procedural.primitives import Primitive, shade
from latent_triplane_ns.procedural.raycast import SUPERSAMPLE, render_view
from latent_triplane_ns.procedural.toys import ToyParameters, sample_toy, toy_primitives

__all__ = [
    "CAMERA_RADIUS",
    "DEFAULT_FAMILY",
    "ELEVATION_RANGE_DEG",
    "FAMILIES",
    "FOV_Y_DEG",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "SUPERSAMPLE",
    "CarParameters",
    "Family",
    "FurnitureParameters",
    "GenerationSummary",
    "Intrinsics",
    "KeyPoint",
    "KitchenParameters",
    "Primitive",
    "ToyParameters",
    "camera_intrinsics",
    "car_key_points",
    "car_primitives",
    "furniture_primitives",
    "generate_collection",
    "heldout_poses",
    "kitchen_primitives",
    "look_at_poses",
    "project_points",
    "render_scene",
    "render_view",
    "sample_car",
    "sample_furniture",
    "sample_kitchen",
    "sample_object",
    "shade",
    "sample_toy",
    "toy_primitives",
    "train_poses",
]
