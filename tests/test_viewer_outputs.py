"""What the viewer's render thread does with the model, for a collection and for single-scene datasets: every scene
of the "Scene" control, every output name and every colormap the viewer offers for it, and depth compositing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import reduced_config
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.utils.colormaps import ColormapOptions, apply_colormap
from nerfstudio.viewer.control_panel import _get_colormap_options
from nerfstudio.viewer.utils import CameraState, get_camera

from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.procedural import CAMERA_RADIUS, look_at_poses

VIEWER_OUTPUTS = ["rgb", "latent", "depth", "accumulation"]
"""The first outputs, in the viewer's "Output type" order: decoded RGB first."""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """This module's tensors are tiny: one thread is faster than two, and many times faster while other processes
    share the machine's two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build_pipeline(method: str, dataparser, tmp_path: Path):
    """The pipeline as `ns-viewer` builds it (untrained: the viewer's code paths do not depend on the weights)."""
    config = reduced_config(method, dataparser.data, tmp_path, steps=1)
    config.pipeline.datamanager.dataparser = dataparser
    config.pipeline.datamanager.cache_latents_on_disk = False  # the collection is shared with other test modules
    return config.pipeline.setup(device="cpu", test_mode="test", world_size=1, local_rank=0)


def viewer_camera(height: int, width: int):
    """A camera as the viewer makes it from a browser's view (no scene index), looking at the object."""
    c2w = torch.from_numpy(look_at_poses([30.0], [45.0], radius=CAMERA_RADIUS)[0][:3]).float()
    state = CameraState(fov=math.radians(60.0), aspect=width / height, c2w=c2w, camera_type=CameraType.PERSPECTIVE)
    return get_camera(state, height, width)


CASES = {
    "collection": lambda root: SceneCollectionDataParserConfig(data=root, scene_range=(0, 3)),
    "single scene folder": lambda root: SceneCollectionDataParserConfig(data=root / "scene_00002"),
    "nerfstudio blender parser": lambda root: BlenderDataParserConfig(data=root / "scene_00001"),
}
EXPECTED_SCENES = {
    "collection": ["scene_00000", "scene_00001", "scene_00002"],
    "single scene folder": ["scene_00002"],
    "nerfstudio blender parser": ["scene"],
}


@pytest.mark.parametrize("method", ["latent-triplane-small", "triplane-rgb"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_scene_output_and_colormap_renders(case, method, tiny_collection, tmp_path):
    pipeline = build_pipeline(method, CASES[case](tiny_collection), tmp_path)
    model = pipeline.model
    model.eval()
    dropdown = model.scene_dropdown
    assert dropdown.name == "Scene"
    assert dropdown.options == model.scene_names == EXPECTED_SCENES[case]
    assert dropdown.default_value == model.scene_names[0]
    camera = viewer_camera(37, 53)  # an odd size, as a browser window gives
    rendered = {}
    for name in reversed(dropdown.options):
        dropdown.value = name
        dropdown.cb_hook(dropdown)  # what the viewer calls when the control changes
        assert model.scene_names[model.viewer_scene] == name
        outputs = model.get_outputs_for_camera(camera)
        assert list(outputs) == VIEWER_OUTPUTS  # no output of more than 3 channels: the viewer's PCA fails on it
        assert outputs["rgb"].shape == (37, 53, 3) and outputs["depth"].shape == (37, 53, 1)
        for key, value in outputs.items():
            offered = _get_colormap_options(value.shape[-1], value.dtype)
            assert offered, f"the viewer offers no colormap for {key} {tuple(value.shape)}"
            for colormap in offered:
                image = apply_colormap(value, ColormapOptions(colormap=colormap))
                assert image.shape[-1] == 3 and torch.isfinite(image).all(), (key, colormap)
        # depth compositing, as the render thread does it
        rays = camera.generate_rays(camera_indices=0)
        points = rays.directions * outputs["depth"]
        rotation = camera.camera_to_worlds[0, :3, :3].T
        z = (rotation @ points.view(-1, 3).T).T.view(*rays.directions.shape)[..., 2:3]
        assert torch.isfinite(z).all()
        rendered[name] = outputs["latent"]
    if len(rendered) > 1:
        first, second = list(rendered.values())[:2]
        assert not torch.allclose(first, second), "the scene control does not change the render"
