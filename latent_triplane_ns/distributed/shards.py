"""Which scenes each rank owns: contiguous shards of the collection, the same on every rank and on resume."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from nerfstudio.configs.base_config import InstantiateConfig

from latent_triplane_ns.atomic import write_json
from latent_triplane_ns.dataparsers.collection import CollectionDataParserConfig
from latent_triplane_ns.dataparsers.procedural import ProceduralCarsDataParserConfig
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.scene_io import scene_name

LAYOUT_FILE = "layout.json"
"""File, in a distributed run's `shards/` folder, recording the ranks and their scenes."""


class ShardError(InputError):
    """A collection that cannot be split over the ranks, or a resume with another split."""


@dataclass(frozen=True)
class ShardLayout:
    """The split of a collection's scenes (in scene-index order) over `world_size` ranks: rank r owns the contiguous
    range `ranges[r]`, the first `S % world_size` ranks one scene more than the others."""

    scene_names: Tuple[str, ...]
    world_size: int

    def __post_init__(self) -> None:
        if self.world_size > len(self.scene_names):
            raise ShardError(
                f"{self.world_size} ranks for a collection of {len(self.scene_names)} scenes: every rank needs at "
                f"least one scene (run with at most {len(self.scene_names)} processes)"
            )

    @property
    def ranges(self) -> List[Tuple[int, int]]:
        base, extra = divmod(len(self.scene_names), self.world_size)
        bounds = [0]
        for rank in range(self.world_size):
            bounds.append(bounds[-1] + base + (rank < extra))
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def names_of(self, rank: int) -> Tuple[str, ...]:
        start, stop = self.ranges[rank]
        return self.scene_names[start:stop]

    def to_json(self) -> Dict[str, Any]:
        return {"world_size": self.world_size, "ranges": self.ranges, "scene_names": list(self.scene_names)}

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / LAYOUT_FILE, self.to_json())

    def check_resumes(self, folder: Path) -> None:
        """Refuses to resume a run whose shards were made with other ranks or other scenes."""
        path = Path(folder) / LAYOUT_FILE
        try:
            stored = json.loads(path.read_text())
        except FileNotFoundError:
            raise ShardError(
                f"{path}: missing: this run was not trained scene-parallel, resume it with ns-train"
            ) from None
        except json.JSONDecodeError as err:
            raise ShardError(f"{path}: not valid JSON ({err})") from None
        if stored.get("world_size") != self.world_size:
            raise ShardError(
                f"{path}: the run was trained on {stored.get('world_size')} ranks, this resume has {self.world_size}: "
                f"resume it with {stored.get('world_size')} processes (each rank resumes its own shard)"
            )
        if stored.get("scene_names") != list(self.scene_names):
            raise ShardError(f"{path}: the run was trained on other scenes than this command selects")


def collection_scene_names(dataparser: InstantiateConfig) -> Tuple[str, ...]:
    """The folder names of the scenes a dataparser config selects, in scene-index order."""
    if isinstance(dataparser, ProceduralCarsDataParserConfig):
        return tuple(scene_name(dataparser.first_scene + i) for i in range(dataparser.num_scenes))
    if isinstance(dataparser, CollectionDataParserConfig):
        return tuple(d.name or d.resolve().name for d in dataparser.setup().scene_dirs())
    raise ShardError(
        f"scene-parallel training splits a collection of scenes over the ranks: the dataparser "
        f"{type(dataparser).__name__} is not one (use procedural-cars, scene-collection or srn-collection)"
    )


def shard_dataparser(dataparser: InstantiateConfig, layout: ShardLayout, rank: int) -> InstantiateConfig:
    """A copy of the dataparser config that loads only the scenes of `rank`."""
    start, stop = layout.ranges[rank]
    if isinstance(dataparser, ProceduralCarsDataParserConfig):
        return dataclasses.replace(dataparser, first_scene=dataparser.first_scene + start, num_scenes=stop - start)
    return dataclasses.replace(dataparser, scenes=layout.names_of(rank), scene_range=None)
