"""Procedural-cars dataparser: generates the embedded car collection (or the furniture family) into a cache folder,
then reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Literal, Type

from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs

from latent_triplane_ns.dataparsers.collection import SceneCollection, SceneCollectionDataParserConfig
from latent_triplane_ns.procedural import Family, generate_collection


@dataclass
class ProceduralCarsDataParserConfig(DataParserConfig):
    """The embedded procedural collection of car-like objects, or of furniture with ``--family furniture`` (white
    background, exact cameras, blender format)."""

    _target: Type = field(default_factory=lambda: ProceduralCars)
    data: Path = Path("data/procedural-cars")
    """Cache folder. Missing or incomplete scenes are generated into it; complete ones are reused. A folder
    generated with another family, seed, image size or view counts is refused (pick another folder, e.g.
    data/procedural-furniture for the furniture)."""
    family: Family = "cars"
    """Object family. cars: body, cabin and wheels. furniture: tables, chairs, chests of drawers, bookcases and
    stools in 2 to 3 colours with wood grain, stripes or checks, in the same scene box and cameras: a second family
    for measuring generalisation honestly. Evaluate on it, or train on it only under a seed that no evaluated scene
    uses (scene k of a seed has the same camera poses in every family). toys: robots, rockets, snowmen and stacking
    towers, a third family. kitchen: mugs, bottles, vases, teapots and jars, a fourth, for evaluation only."""
    num_scenes: int = 10
    """Number of scenes."""
    first_scene: int = 0
    """Index of the first scene; scene k depends only on (seed, k)."""
    seed: int = 0
    """Collection seed."""
    image_size: int = 128
    """Image side in pixels."""
    num_train_views: int = 50
    """Training views per scene."""
    num_test_views: int = 10
    """Held-out views per scene."""
    scene_box_bound: float = 1.0
    """Half-size of the scene box; the cars and the furniture fit in [-0.9, 0.9]^3."""
    alpha_color: Literal["white", "black"] = "white"
    """Background that the RGBA images are composited over."""
    workers: int | None = None
    """Processes used to generate scenes; None uses one per CPU core."""


class ProceduralCars(DataParser):
    """Makes sure the requested scenes exist in the cache folder, then parses them as a scene collection (scene index
    i is scene ``first_scene + i``)."""

    config: ProceduralCarsDataParserConfig

    def __init__(self, config: ProceduralCarsDataParserConfig):
        super().__init__(config)
        self._collection: SceneCollection | None = None

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Dict | None) -> DataparserOutputs:
        if self._collection is None:
            summary = generate_collection(
                self.config.data,
                num_scenes=self.config.num_scenes,
                seed=self.config.seed,
                image_size=self.config.image_size,
                num_train_views=self.config.num_train_views,
                num_test_views=self.config.num_test_views,
                first_scene=self.config.first_scene,
                fmt="blender",
                workers=self.config.workers,
                family=self.config.family,
            )
            collection_config = SceneCollectionDataParserConfig(
                data=self.config.data,
                scenes=tuple(d.name for d in summary.scene_dirs),
                scene_box_bound=self.config.scene_box_bound,
                alpha_color=self.config.alpha_color,
            )
            self._collection = collection_config.setup()
        return self._collection.get_dataparser_outputs(split)
