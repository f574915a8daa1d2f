"""Dataparser specifications registered through the ``nerfstudio.dataparser_configs`` entry points.

nerfstudio imports this module while it builds its own dataparser registry, so it only imports the config classes
(whose modules import nerfstudio's base dataparser, cameras and scene box, all loaded by then).
"""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.dataparsers.procedural import ProceduralCarsDataParserConfig
from latent_triplane_ns.dataparsers.srn import SrnCollectionDataParserConfig

scene_collection = DataParserSpecification(
    config=SceneCollectionDataParserConfig(),
    description="A folder of scene folders (blender or nerfstudio format) as one dataset with a scene index per image.",
)
srn_collection = DataParserSpecification(
    config=SrnCollectionDataParserConfig(),
    description="A folder of ShapeNet-SRN scene folders (rgb/, pose/, intrinsics.txt) with a scene index per image.",
)
procedural_cars = DataParserSpecification(
    config=ProceduralCarsDataParserConfig(),
    description="The embedded procedural car collection, generated into a cache folder on first use.",
)
