"""The object families the generator knows: their names, and the parameters and parts of object (seed, index)."""

from __future__ import annotations

from typing import List, Literal, Tuple, get_args

from latent_triplane_ns.errors import InputError
from latent_triplane_ns.procedural.cars import CarParameters, car_primitives, sample_car
from latent_triplane_ns.procedural.furniture import FurnitureParameters, furniture_primitives, sample_furniture
from latent_triplane_ns.procedural.kitchen import KitchenParameters, kitchen_primitives, sample_kitchen
from latent_triplane_ns.procedural.primitives import Primitive
from latent_triplane_ns.procedural.toys import ToyParameters, sample_toy, toy_primitives

Family = Literal["cars", "furniture", "toys", "kitchen"]
"""``cars``: the default collection (body, cabin, wheels). ``furniture``: the second family (tables, chairs, chests
of drawers, bookcases, stools), for measuring generalisation away from cars. ``toys``: the third (robots, rockets,
snowmen, stacking towers). ``kitchen``: the fourth (mugs, bottles, vases, teapots, jars), for evaluation only."""
FAMILIES: Tuple[str, ...] = get_args(Family)
DEFAULT_FAMILY: Family = "cars"
"""The family of collections whose metadata names none (written before families existed)."""


def sample_object(
    family: str, seed: int, index: int
) -> Tuple[CarParameters | FurnitureParameters | ToyParameters | KitchenParameters, List[Primitive]]:
    """The parameters and primitives of object ``index`` of the ``family`` collection ``seed``."""
    if family == "cars":
        car = sample_car(seed, index)
        return car, car_primitives(car)
    if family == "furniture":
        piece = sample_furniture(seed, index)
        return piece, furniture_primitives(piece)
    if family == "toys":
        toy = sample_toy(seed, index)
        return toy, toy_primitives(toy)
    if family == "kitchen":
        item = sample_kitchen(seed, index)
        return item, kitchen_primitives(item)
    raise InputError(f"Unknown procedural family {family!r}, expected one of {', '.join(FAMILIES)}.")
