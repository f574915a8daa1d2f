"""Tests for the scene-collection, SRN and procedural-cars dataparsers."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latent_triplane_ns import procedural
from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.dataparsers.procedural import ProceduralCarsDataParserConfig
from latent_triplane_ns.dataparsers.srn import SrnCollectionDataParserConfig
from latent_triplane_ns.scene_io import CollectionError, MissingFileError

SEED, SIZE, TRAIN, TEST = 3, 32, 4, 2


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """The same three scenes written in blender and in SRN layout."""
    root = tmp_path_factory.mktemp("collections")
    kw = dict(seed=SEED, image_size=SIZE, num_train_views=TRAIN, num_test_views=TEST, workers=1, show_progress=False)
    procedural.generate_collection(root / "blender", 3, fmt="blender", **kw)
    procedural.generate_collection(root / "srn", 3, fmt="srn", **kw)
    return root


def parse(data, split="train", **kw):
    return SceneCollectionDataParserConfig(data=Path(data), **kw).setup().get_dataparser_outputs(split)


def parse_srn(data, split="train", **kw):
    return (
        SrnCollectionDataParserConfig(data=Path(data), num_test_views=TEST, **kw).setup().get_dataparser_outputs(split)
    )


def scene_index(outputs):
    return outputs.cameras.metadata["scene_index"].squeeze(-1).tolist()


def test_outputs_contract(collections):
    out = parse(collections / "blender", scene_box_bound=1.5, scale_factor=0.5)
    cams = out.cameras
    assert len(out.image_filenames) == cams.shape[0] == 3 * TRAIN
    assert cams.camera_to_worlds.shape == (12, 3, 4)
    assert cams.metadata["scene_index"].shape == (12, 1) and cams.metadata["scene_index"].dtype == torch.long
    assert scene_index(out) == [0] * 4 + [1] * 4 + [2] * 4
    assert out.metadata["scene_names"] == ["scene_00000", "scene_00001", "scene_00002"]
    assert out.image_filenames[5] == collections / "blender" / "scene_00001" / "train" / "r_1.png"
    torch.testing.assert_close(out.alpha_color, torch.ones(3))
    torch.testing.assert_close(out.scene_box.aabb, torch.tensor([[-1.5] * 3, [1.5] * 3]))
    assert out.dataparser_scale == 0.5
    # Camera positions are scaled: the generator puts them at radius 2.6.
    torch.testing.assert_close(cams.camera_to_worlds[:, :, 3].norm(dim=-1), torch.full((12,), 1.3))
    assert (cams.width == SIZE).all() and (cams.height == SIZE).all()
    test = parse(collections / "blender", "test")
    assert scene_index(test) == [0, 0, 1, 1, 2, 2]
    assert parse(collections / "blender", "val").image_filenames == test.image_filenames
    assert parse(collections / "blender", alpha_color="black").alpha_color.tolist() == [0.0, 0.0, 0.0]


def test_key_point_round_trip_through_nerfstudio_cameras(collections):
    """The roof centre of scene 1 lands on a roof-coloured pixel, and nerfstudio's rays through that pixel pass
    through the point."""
    out = parse(collections / "blender")
    roof = procedural.car_key_points(procedural.sample_car(SEED, 1))["roof_center"]
    views = [i for i, s in enumerate(scene_index(out)) if s == 1]
    view = max(views, key=lambda i: out.cameras.camera_to_worlds[i, 2, 3].item())  # highest camera sees the roof
    pose = procedural.train_poses(SEED, 1, TRAIN)[view - views[0]]
    u, v = procedural.project_points(roof.position[None], pose, procedural.camera_intrinsics(SIZE))[0]

    # Projection with the intrinsics and extrinsics read back by the parser.
    c2w = out.cameras.camera_to_worlds[view].double().numpy()
    cam = (roof.position - c2w[:, 3]) @ c2w[:, :3]
    fx, fy, cx, cy = (getattr(out.cameras, k)[view, 0].item() for k in ("fx", "fy", "cx", "cy"))
    np.testing.assert_allclose([cx + fx * cam[0] / -cam[2], cy - fy * cam[1] / -cam[2]], [u, v], atol=1e-3)

    # The pixel there shows the roof colour, opaque.
    rgba = np.asarray(Image.open(out.image_filenames[view])) / 255.0
    row, col = int(v), int(u)
    assert rgba[row, col, 3] == 1.0
    np.testing.assert_allclose(rgba[row, col, :3], roof.color, atol=0.6 / 255)

    # nerfstudio's ray through the exact projection passes through the point; through the pixel centre, within a pixel.
    coords = torch.tensor([[v, u], [row + 0.5, col + 0.5]], dtype=torch.float32)
    rays = out.cameras.generate_rays(camera_indices=view, coords=coords)
    origins, dirs = rays.origins.double().numpy(), rays.directions.double().numpy()
    offset = roof.position - origins
    dist = np.linalg.norm(offset - (offset * dirs).sum(-1, keepdims=True) * dirs, axis=-1)
    pixel_at_depth = np.linalg.norm(offset[1]) / fx
    assert dist[0] < 1e-5
    assert dist[1] < pixel_at_depth
    assert rays.metadata["scene_index"].tolist() == [[1], [1]]


@pytest.mark.parametrize("split", ["train", "test"])
def test_blender_and_srn_agree(collections, split):
    blender, srn = parse(collections / "blender", split), parse_srn(collections / "srn", split)
    assert len(blender.image_filenames) == len(srn.image_filenames) == 3 * (TRAIN if split == "train" else TEST)
    torch.testing.assert_close(blender.cameras.camera_to_worlds, srn.cameras.camera_to_worlds, rtol=0, atol=1e-6)
    for key in ("fx", "fy", "cx", "cy", "width", "height"):
        torch.testing.assert_close(getattr(blender.cameras, key), getattr(srn.cameras, key), rtol=0, atol=1e-5)
    assert scene_index(blender) == scene_index(srn)
    assert blender.metadata == srn.metadata
    for a, b in zip(blender.image_filenames, srn.image_filenames, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_srn_intrinsics_are_rescaled_to_the_image_size(collections, tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(collections / "srn" / "scene_00000", scene)
    f, cx, cy, _ = (float(x) for x in (scene / "intrinsics.txt").read_text().split()[:4])
    (scene / "intrinsics.txt").write_text(f"{4 * f} {4 * cx} {4 * cy} 0.\n0. 0. 0.\n1.\n{4 * SIZE} {4 * SIZE}\n")
    cams = parse_srn(scene).cameras
    torch.testing.assert_close(cams.fx[:, 0], torch.full((TRAIN,), f))
    torch.testing.assert_close(cams.cx[:, 0], torch.full((TRAIN,), SIZE / 2))


def test_scene_indices_are_stable(tmp_path):
    kw = dict(seed=0, image_size=8, num_train_views=2, num_test_views=1, workers=1, show_progress=False)
    procedural.generate_collection(tmp_path, 10, **kw)
    names = [f"scene_{k:05d}" for k in range(10)]
    out = parse(tmp_path)
    assert out.metadata["scene_names"] == names
    assert sorted(set(scene_index(out))) == list(range(10))
    # Selection keeps the sorted folder order, whatever order the names are given in.
    picked = parse(tmp_path, scenes=("scene_00007", "scene_00002", "scene_00004"))
    assert picked.metadata["scene_names"] == ["scene_00002", "scene_00004", "scene_00007"]
    assert scene_index(picked) == [0, 0, 1, 1, 2, 2]
    assert picked.image_filenames[2] == tmp_path / "scene_00004" / "train" / "r_0.png"
    ranged = parse(tmp_path, scene_range=(3, 6))
    assert ranged.metadata["scene_names"] == names[3:6]
    assert scene_index(parse(tmp_path, "test", scene_range=(3, 6))) == [0, 1, 2]
    # A scene whose name sorts last does not move the others.
    shutil.copytree(tmp_path / "scene_00000", tmp_path / "zz_extra")
    extended = parse(tmp_path)
    assert extended.metadata["scene_names"] == names + ["zz_extra"]
    assert scene_index(extended)[:20] == scene_index(out)
    assert extended.image_filenames[:20] == out.image_filenames


def test_single_scene_folder(collections):
    out = parse(collections / "blender" / "scene_00002")
    assert out.metadata["scene_names"] == ["scene_00002"]
    assert scene_index(out) == [0] * TRAIN
    srn = parse_srn(collections / "srn" / "scene_00002")
    torch.testing.assert_close(out.cameras.camera_to_worlds, srn.cameras.camera_to_worlds, rtol=0, atol=1e-6)


def test_nerfstudio_format(collections, tmp_path):
    """A transforms.json scene: split by its file lists, or every 8th frame held out."""
    scene = tmp_path / "scene"
    shutil.copytree(collections / "blender" / "scene_00000", scene)
    frames = []
    for split in ("train", "test"):
        meta = json.loads((scene / f"transforms_{split}.json").read_text())
        frames += [{**f, "file_path": f["file_path"] + ".png"} for f in meta["frames"]]
        (scene / f"transforms_{split}.json").unlink()
    keys = {k: meta[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")}
    (scene / "transforms.json").write_text(json.dumps({**keys, "frames": frames}))
    # Sorted: test/r_0, test/r_1, train/r_0..r_3; positions 0 (test/r_0) is held out.
    assert [p.relative_to(scene).as_posix() for p in parse(scene, "test").image_filenames] == ["test/r_0.png"]
    assert len(parse(scene).image_filenames) == 5
    lists = {
        "train_filenames": [f"train/r_{i}.png" for i in range(4)],
        "test_filenames": ["test/r_0.png", "test/r_1.png"],
    }
    (scene / "transforms.json").write_text(json.dumps({**keys, **lists, "frames": frames}))
    blender = parse(collections / "blender" / "scene_00000", "test")
    nerfstudio = parse(scene, "test")
    torch.testing.assert_close(nerfstudio.cameras.camera_to_worlds, blender.cameras.camera_to_worlds)
    torch.testing.assert_close(nerfstudio.cameras.fx, blender.cameras.fx)
    assert len(parse(scene).image_filenames) == 4


# Bad input: each case must raise one CollectionError that names the file at fault.


@pytest.fixture
def scene_copy(collections, tmp_path):
    root = tmp_path / "collection"
    shutil.copytree(collections / "blender", root)
    return root


def _edit_frames(path, edit):
    meta = json.loads(path.read_text())
    edit(meta["frames"])
    path.write_text(json.dumps(meta))


def _raises(match_path, data, error=CollectionError, **kw):
    with pytest.raises(error, match=re.escape(str(match_path))):
        parse(data, **kw)


def test_error_missing_folder(tmp_path):
    _raises(tmp_path / "nope", tmp_path / "nope", MissingFileError)
    with pytest.raises(FileNotFoundError):  # also catchable as the builtin
        parse(tmp_path / "nope")


def test_error_empty_collection(tmp_path):
    _raises(tmp_path, tmp_path)
    (tmp_path / ".scene_00000.tmp-1-abcd").mkdir()  # an interrupted write is not a scene
    _raises(tmp_path, tmp_path)


def test_error_scene_without_transforms(scene_copy):
    (scene_copy / "scene_00001" / "transforms_train.json").unlink()
    _raises(scene_copy / "scene_00001", scene_copy, MissingFileError)
    _raises(scene_copy / "scene_00001", scene_copy, scenes=("scene_00001",))
    assert len(parse(scene_copy, scenes=("scene_00000", "scene_00002")).image_filenames) == 2 * TRAIN


def test_error_missing_test_transforms(scene_copy):
    (scene_copy / "scene_00002" / "transforms_test.json").unlink()
    _raises(scene_copy / "scene_00002" / "transforms_test.json", scene_copy, MissingFileError, split="test")
    assert len(parse(scene_copy, "train").image_filenames) == 3 * TRAIN


def test_error_missing_image(scene_copy):
    (scene_copy / "scene_00001" / "train" / "r_2.png").unlink()
    _raises(scene_copy / "scene_00001" / "train" / "r_2", scene_copy, MissingFileError)


def test_error_image_sizes_differ(scene_copy):
    Image.new("RGBA", (SIZE, SIZE // 2)).save(scene_copy / "scene_00000" / "train" / "r_3.png")
    with pytest.raises(CollectionError, match=re.escape(str(scene_copy / "scene_00000" / "train" / "r_3.png"))) as err:
        parse(scene_copy)
    assert "32x16" in str(err.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m[0].__setitem__(3, float("nan")), "non-finite"),
        (lambda m: [row.__setitem__(0, 1.1 * row[0]) for row in m[:3]], "not orthonormal"),
        (lambda m: [row.__setitem__(0, -row[0]) for row in m[:3]], "det"),
        (lambda m: [row.pop() for row in m], "shape"),
    ],
)
def test_error_bad_pose(scene_copy, edit, message):
    path = scene_copy / "scene_00002" / "transforms_train.json"
    _edit_frames(path, lambda frames: edit(frames[1]["transform_matrix"]))
    with pytest.raises(CollectionError, match=re.escape(str(path))) as err:
        parse(scene_copy)
    assert message in str(err.value) and "./train/r_1" in str(err.value)


def test_error_malformed_json(scene_copy):
    path = scene_copy / "scene_00000" / "transforms_train.json"
    path.write_text('{"frames": [')
    _raises(path, scene_copy)
    path.write_text('{"frames": []}')
    _raises(path, scene_copy)
    path.write_text('{"frames": [{"file_path": "./train/r_0"}]}')
    _raises(path, scene_copy)


def test_error_selection(scene_copy):
    with pytest.raises(MissingFileError, match=re.escape(str(scene_copy)) + ".*scene_00009"):
        parse(scene_copy, scenes=("scene_00001", "scene_00009"))
    for bad_range in [(2, 4), (-1, 2), (2, 2)]:
        with pytest.raises(CollectionError, match=re.escape(str(scene_copy)) + ".*out of bounds"):
            parse(scene_copy, scene_range=bad_range)


def test_error_srn_inputs(collections, tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(collections / "srn" / "scene_00001", scene)
    (scene / "pose" / "000004.txt").unlink()
    with pytest.raises(MissingFileError, match=re.escape(str(scene / "pose" / "000004.txt"))):
        parse_srn(scene)
    assert len(parse_srn(scene, "test").image_filenames) == TEST  # the test split does not need that pose
    with pytest.raises(CollectionError, match=re.escape(str(scene / "rgb"))):
        SrnCollectionDataParserConfig(data=scene, num_test_views=6).setup().get_dataparser_outputs("train")
    (scene / "intrinsics.txt").write_text("64. 16.\n")
    with pytest.raises(CollectionError, match=re.escape(str(scene / "intrinsics.txt"))):
        parse_srn(scene, "test")


# Procedural-cars dataparser


def _procedural(data, **kw):
    settings = dict(num_scenes=2, image_size=16, num_train_views=3, num_test_views=2, workers=1, seed=5)
    return ProceduralCarsDataParserConfig(data=data, **{**settings, **kw}).setup()


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_procedural_generates_once(tmp_path):
    data = tmp_path / "cache"
    out = _procedural(data).get_dataparser_outputs("train")
    assert out.metadata["scene_names"] == ["scene_00000", "scene_00001"]
    assert scene_index(out) == [0, 0, 0, 1, 1, 1]
    direct = parse(data)
    torch.testing.assert_close(out.cameras.camera_to_worlds, direct.cameras.camera_to_worlds)
    test = _procedural(data).get_dataparser_outputs("test")
    assert scene_index(test) == [0, 0, 1, 1]

    for path in data.rglob("*"):  # an old, distinctive mtime that any rewrite would change
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _mtimes(data)
    _procedural(data).get_dataparser_outputs("train")
    assert _mtimes(data) == before

    # Asking for more scenes generates only the new one; a later scene range is parsed with indices from 0.
    later = _procedural(data, num_scenes=2, first_scene=1).get_dataparser_outputs("train")
    assert later.metadata["scene_names"] == ["scene_00001", "scene_00002"]
    assert scene_index(later) == [0, 0, 0, 1, 1, 1]
    assert all(_mtimes(data)[p] == t for p, t in before.items())


def test_procedural_regenerates_incomplete_scenes(tmp_path):
    data = tmp_path / "cache"
    _procedural(data).get_dataparser_outputs("train")
    reference = (data / "scene_00001" / "test" / "r_1.png").read_bytes()
    (data / "scene_00001" / "test" / "r_1.png").unlink()
    # An interrupted write: a hidden temporary folder holding part of scene 2.
    partial = data / ".scene_00002.tmp-4242-deadbeef"
    shutil.copytree(data / "scene_00000", partial)
    shutil.rmtree(partial / "test")
    out = _procedural(data, num_scenes=3).get_dataparser_outputs("test")
    assert out.metadata["scene_names"] == ["scene_00000", "scene_00001", "scene_00002"]
    assert (data / "scene_00001" / "test" / "r_1.png").read_bytes() == reference
    assert (data / "scene_00002" / "test" / "r_1.png").is_file()
    assert parse(data).metadata["scene_names"] == ["scene_00000", "scene_00001", "scene_00002"]


def test_procedural_refuses_a_cache_with_other_settings(tmp_path):
    data = tmp_path / "cache"
    _procedural(data, num_scenes=1).get_dataparser_outputs("train")
    with pytest.raises(CollectionError, match=re.escape(str(data / "collection.json"))):
        _procedural(data, num_scenes=1, seed=6).get_dataparser_outputs("train")


def test_procedural_furniture_family(tmp_path):
    data = tmp_path / "furniture"
    out = _procedural(data, num_scenes=1, family="furniture").get_dataparser_outputs("train")
    assert out.metadata["scene_names"] == ["scene_00000"]
    assert json.loads((data / "scene_00000" / "scene.json").read_text())["family"] == "furniture"
    with pytest.raises(CollectionError, match=re.escape(str(data / "collection.json"))) as refused:
        _procedural(data, num_scenes=1).get_dataparser_outputs("train")  # the default family, cars
    assert "family 'furniture' instead of 'cars'" in str(refused.value)


@pytest.mark.slow
def test_ns_train_help_lists_the_dataparsers():
    """``ns-train nerfacto <dataparser> --help`` exits with 0 for each registered dataparser (entry points)."""
    script = (
        "import sys\n"
        "from nerfstudio.scripts.train import entrypoint\n"
        "for name in sys.argv[1:]:\n"
        "    sys.argv = ['ns-train', 'nerfacto', name, '--help']\n"
        "    try:\n"
        "        entrypoint()\n"
        "    except SystemExit as exit:\n"
        "        print('EXIT', name, exit.code, flush=True)\n"
    )
    names = ["scene-collection", "srn-collection", "procedural-cars"]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=300, env=env
    )
    for name in names:
        assert f"EXIT {name} 0" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    for option in ("--scene-range", "--num-test-views", "--num-scenes", "--scale-factor"):
        assert option in result.stdout


def test_a_dangling_scene_link_is_named_not_dropped(collections, tmp_path):
    data = shutil.copytree(collections / "blender", tmp_path / "cars")
    os.symlink(tmp_path / "moved_away", data / "scene_00009")
    with pytest.raises(MissingFileError, match=r"scene_00009: a link to .*moved_away, which does not exist"):
        parse(data)
