"""`ns-render` on tiny trained runs: videos without a system ffmpeg, dataset PNGs, and runs whose inputs moved.

Only the spiral runs as a separate `ns-render` process (the command as typed, in a fresh environment); the other
renders call the same nerfstudio commands in this process, which is much faster on a CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from conftest import reduced_config, run_training, tiny_autoencoder_config
from PIL import Image

from latent_triplane_ns.autoencoder import AutoencoderConfig, AutoencoderError
from latent_triplane_ns.datamanager import CACHE_DIRNAME
from latent_triplane_ns.ffmpeg import ensure_ffmpeg
from latent_triplane_ns.procedural import look_at_poses

pytestmark = pytest.mark.slow
"""Render and video tests, on runs trained for them."""

SPIRAL_FRAMES = (8, 1.0)
"""Frame rate and seconds of the spiral video."""
INTERPOLATION_STEPS = 2
"""Frames between consecutive held-out cameras in the interpolated video."""
PATH_SIZE = (48, 40)
"""Width and height of the camera-path video (not the dataset's 32 x 32)."""
PATH_FRAMES = 5
"""Cameras of the camera path (one second long)."""


def without_system_ffmpeg() -> Dict[str, str]:
    """The environment with PATH stripped of every folder holding an ffmpeg (the virtual environment's bin included,
    where the packaged ffmpeg is linked): `ns-render` must find imageio-ffmpeg's binary by itself."""
    folders = [f for f in os.environ.get("PATH", "").split(os.pathsep) if f and not (Path(f) / "ffmpeg").exists()]
    folders = [f for f in folders if Path(f).resolve() != Path(sys.executable).parent.resolve()]
    env = dict(os.environ, PATH=os.pathsep.join(folders) or "/nonexistent", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    assert shutil.which("ffmpeg", path=env["PATH"]) is None
    return env


def ns_render(*args: str) -> List[str]:
    return [str(Path(sys.executable).parent / "ns-render"), *args]


def camera_path_file(path: Path) -> Path:
    """A viewer-style camera path: PATH_FRAMES cameras around the object, PATH_SIZE pixels, one second."""
    poses = look_at_poses(np.full(PATH_FRAMES, 25.0), np.linspace(0.0, 360.0, PATH_FRAMES, endpoint=False))
    frames = [{"camera_to_world": pose.reshape(-1).tolist(), "fov": 50.0, "aspect": 1.2} for pose in poses]
    width, height = PATH_SIZE
    path.write_text(
        json.dumps(
            {
                "camera_type": "perspective",
                "render_width": width,
                "render_height": height,
                "seconds": 1.0,
                "camera_path": frames,
            }
        )
    )
    return path


def video_frames(path: Path):
    """(width, height) and the number of frames of an mp4, decoded with imageio-ffmpeg's binary."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return tuple(meta["size"]), sum(1 for _ in reader)


def held_out_render(pipeline_or_trainer) -> torch.Tensor:
    """The decoded render of held-out view 2 (scene_00001), deterministic in eval mode."""
    pipeline = getattr(pipeline_or_trainer, "pipeline", pipeline_or_trainer)
    camera = pipeline.datamanager.eval_dataset.cameras[2:3]
    pipeline.model.eval()
    return pipeline.model.get_outputs_for_camera(camera)["rgb"]


@pytest.fixture(scope="module")
def runs(tiny_collection, tmp_path_factory):
    """Three tiny latent-triplane-small runs on a copy of two scenes, whose inputs are then moved or deleted.

    Run A learns a basis; its scenes' latent cache is deleted after training. Run B encodes with a pretrained
    AutoencoderKL directory that is moved away after training. Run C learns the same scenes against run A's basis,
    which is moved away after training. Each run's held-out render is kept from before the move.
    """
    root = tmp_path_factory.mktemp("render")
    data = root / "cars"
    for scene in ("scene_00000", "scene_00001"):
        shutil.copytree(tiny_collection / scene, data / scene)
    run_a = run_training(reduced_config("latent-triplane-small", data, root / "a", steps=2))
    ae_dir = root / "autoencoder"
    tiny_autoencoder_config().compact.build().save_pretrained(str(ae_dir))
    pretrained = AutoencoderConfig(source="pretrained", pretrained_path=ae_dir)
    run_b = run_training(reduced_config("latent-triplane-small", data, root / "b", steps=2, autoencoder=pretrained))
    basis = run_a.base_dir / "basis"
    run_c = run_training(reduced_config("latent-triplane-small", data, root / "c", steps=2, basis_checkpoint=basis))
    renders = {"b": held_out_render(run_b), "c": held_out_render(run_c)}

    cache = data / CACHE_DIRNAME
    assert cache.is_dir()
    shutil.rmtree(cache)
    ae_dir.rename(root / "autoencoder-moved")
    basis.rename(root / "basis-moved")
    return {
        **{name: run.base_dir / "config.yml" for name, run in (("a", run_a), ("b", run_b), ("c", run_c))},
        "ae_dir": ae_dir,
        "basis": basis,
        "renders": renders,
        "root": root,
    }


@pytest.fixture
def packaged_ffmpeg(monkeypatch) -> str:
    """This process's PATH without any system ffmpeg, then what the presets do at import: imageio-ffmpeg's binary."""
    monkeypatch.setenv("PATH", without_system_ffmpeg()["PATH"])
    found = ensure_ffmpeg()
    assert found is not None and Path(found).resolve() == Path(imageio_ffmpeg.get_ffmpeg_exe()).resolve()
    return found


def test_spiral_video_in_a_fresh_process(runs):
    """`ns-render spiral` as a user types it, on a machine without a system ffmpeg."""
    fps, seconds = SPIRAL_FRAMES
    output = runs["root"] / "spiral.mp4"
    command = ns_render("spiral", "--load-config", str(runs["c"]), "--output-path", str(output))
    command += ["--frame-rate", str(fps), "--seconds", str(seconds)]
    result = subprocess.run(command, env=without_system_ffmpeg(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert video_frames(output) == ((32, 32), int(fps * seconds))


def test_interpolated_video(runs, packaged_ffmpeg):
    from nerfstudio.scripts.render import RenderInterpolated

    output = runs["root"] / "interpolate.mp4"
    RenderInterpolated(load_config=runs["a"], output_path=output, interpolation_steps=INTERPOLATION_STEPS).main()
    num_eval = 4  # 2 scenes x 2 held-out views
    assert video_frames(output) == ((32, 32), INTERPOLATION_STEPS * (num_eval - 1))


def test_camera_path_video(runs, packaged_ffmpeg):
    from nerfstudio.scripts.render import RenderCameraPath

    output = runs["root"] / "path.mp4"
    path = camera_path_file(runs["root"] / "camera_path.json")
    RenderCameraPath(load_config=runs["a"], output_path=output, camera_path_filename=path).main()
    assert video_frames(output) == (PATH_SIZE, PATH_FRAMES)


def test_dataset_render_writes_pngs(runs):
    from nerfstudio.scripts.render import DatasetRender

    output = runs["root"] / "dataset"
    DatasetRender(
        load_config=runs["a"], output_path=output, split="test", image_format="png", rendered_output_names=["rgb"]
    ).main()
    folder = output / "test" / "rgb"
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert written == [f"scene_0000{s}/test/r_{v}.png" for s in (0, 1) for v in (0, 1)]
    for name in written:
        with Image.open(folder / name) as image:
            assert image.size == (32, 32) and image.mode == "RGB"


@pytest.mark.parametrize("run, moved", [("b", "ae_dir"), ("c", "basis")])
def test_moved_inputs_render_from_the_checkpoint(runs, run, moved):
    """The autoencoder folder (run B) or the basis checkpoint (run C) is gone: the run's config.yml records the
    autoencoder's architecture, and every weight is in the nerfstudio checkpoint, so the render is unchanged."""
    from nerfstudio.utils.eval_utils import eval_setup

    assert not runs[moved].exists()
    _, pipeline, _, _ = eval_setup(runs[run], test_mode="inference")
    assert torch.allclose(held_out_render(pipeline), runs["renders"][run], atol=1e-6)


def test_moved_inputs_without_a_checkpoint_are_named(runs, tmp_path):
    """Where the weights cannot come from a checkpoint, the missing file is named."""
    import yaml
    from nerfstudio.utils.eval_utils import eval_setup

    # training (no checkpoint loaded) with the basis gone: refused before any step, naming the file
    config = yaml.load(runs["c"].read_text(), Loader=yaml.Loader)
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    with pytest.raises(FileNotFoundError, match=re.escape(str(runs["basis"] / "basis.json")) + ": missing"):
        pipeline.get_train_loss_dict(step=0)
    # a run whose config.yml lacks the record (written before training started): the folder is named
    config = yaml.load(runs["b"].read_text(), Loader=yaml.Loader)
    config.pipeline.model.restore = None
    stripped = tmp_path / "config.yml"
    stripped.write_text(yaml.dump(config))
    with pytest.raises(AutoencoderError, match=f"{re.escape(str(runs['ae_dir']))}: autoencoder directory does not"):
        eval_setup(stripped, test_mode="inference")


def test_scene_of_camera_paths_is_chosen_by_name(runs, monkeypatch):
    """Camera paths carry no scene index: LTN_SCENE picks the scene that `ns-render` and the viewer draw."""
    from copy import deepcopy

    from nerfstudio.utils.eval_utils import eval_setup

    monkeypatch.setenv("LTN_SCENE", "scene_00001")
    _, pipeline, _, _ = eval_setup(runs["a"], test_mode="inference")
    model = pipeline.model
    model.eval()
    own = pipeline.datamanager.eval_dataset.cameras[2:3]  # a held-out camera of scene_00001
    assert int(own.metadata["scene_index"]) == 1
    path_camera, other_scene = deepcopy(own), deepcopy(own)
    path_camera.metadata = None
    other_scene.metadata = {"scene_index": torch.zeros_like(own.metadata["scene_index"])}
    drawn = model.get_outputs_for_camera(path_camera)["rgb"]
    assert torch.equal(drawn, model.get_outputs_for_camera(own)["rgb"])
    assert not torch.allclose(drawn, model.get_outputs_for_camera(other_scene)["rgb"])
    assert model.scene_dropdown.default_value == "scene_00001"

    monkeypatch.setenv("LTN_SCENE", "car_42")
    with pytest.raises(ValueError, match="LTN_SCENE='car_42' is not a scene of this run"):
        eval_setup(runs["a"], test_mode="inference")
