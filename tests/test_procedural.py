"""Tests for the procedural generator (cars, and furniture, toys and kitchen objects as the other families), its
cameras and renderer, and the atomic scene writers."""

import dataclasses
import json
import math

import numpy as np
import pytest

from latent_triplane_ns import procedural, scene_io
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.procedural import cameras, cars, furniture, primitives, raycast
from latent_triplane_ns.scene_io import CollectionError


def test_intrinsics_match_the_field_of_view():
    intr = procedural.camera_intrinsics(128)
    # 64 / tan(26 deg) = 64 / 0.487733 = 131.219
    assert intr.fx == pytest.approx(131.2194, abs=1e-3)
    assert intr.fy == intr.fx
    assert (intr.cx, intr.cy, intr.width, intr.height) == (64.0, 64.0, 128, 128)


def test_look_at_pose_conventions():
    # Camera at elevation 0, azimuth 0: on the +x axis, looking at the origin along -x, z up in the image.
    pose = procedural.look_at_poses(np.array([0.0]), np.array([0.0]))[0]
    np.testing.assert_allclose(pose[:3, 3], [2.6, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(pose[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # camera +z points backwards
    np.testing.assert_allclose(pose[:3, 1], [0.0, 0.0, 1.0], atol=1e-12)  # camera +y is world up
    np.testing.assert_allclose(pose[:3, 0], [0.0, 1.0, 0.0], atol=1e-12)  # right = +y seen from +x
    intr = procedural.camera_intrinsics(64)
    uv = procedural.project_points(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.5, 0.0]]), pose, intr)
    np.testing.assert_allclose(uv[0], [32.0, 32.0], atol=1e-9)  # origin at the image centre
    # A point 0.5 above the origin at depth 2.6 is fy * 0.5 / 2.6 pixels above the centre (smaller row).
    np.testing.assert_allclose(uv[1], [32.0, 32.0 - intr.fy * 0.5 / 2.6], atol=1e-9)
    np.testing.assert_allclose(uv[2], [32.0 + intr.fx * 0.5 / 2.6, 32.0], atol=1e-9)


@pytest.mark.parametrize("poses_fn", [procedural.train_poses, procedural.heldout_poses])
def test_cameras_on_the_sphere_band(poses_fn):
    poses = poses_fn(3, 7, 40)
    positions = poses[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(positions, axis=-1), 2.6)
    elevation = np.degrees(np.arcsin(positions[:, 2] / 2.6))
    assert elevation.min() >= 5.0 and elevation.max() <= 60.0
    for pose in poses:
        rot = pose[:3, :3]
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(-rot[:, 2], -pose[:3, 3] / 2.6, atol=1e-12)  # looks at the origin
        assert abs(rot[2, 0]) < 1e-12  # no roll: the image x axis stays horizontal
    azimuth = np.degrees(np.arctan2(positions[:, 1], positions[:, 0])) % 360
    assert np.ptp(azimuth) > 270  # all around the object


def test_train_and_test_cameras_differ():
    train, test = procedural.train_poses(0, 0, 50), procedural.heldout_poses(0, 0, 10)
    distances = np.linalg.norm(test[:, None, :3, 3] - train[None, :, :3, 3], axis=-1)
    assert distances.min() > 1e-6


def test_cars_fit_the_box_and_vary():
    cars = [procedural.sample_car(0, k) for k in range(100)]
    for car in cars:
        prims = procedural.car_primitives(car)
        lo = np.min([p.lo for p in prims], axis=0)
        hi = np.max([p.hi for p in prims], axis=0)
        assert lo.min() >= -0.9 and hi.max() <= 0.9
        assert 1.6 <= hi[0] - lo[0] - 0.024 <= 1.8  # car length without the protruding lights
        assert abs(lo[2] + hi[2]) < 0.05  # vertically centred
        assert car.cabin_top == max(p.hi[2] for p in prims)  # the roof is the highest surface
    assert np.std([c.length for c in cars]) > 0.03
    assert len({c.body_color for c in cars}) == 100
    assert 10 < sum(c.has_spoiler for c in cars) < 90


def test_render_alpha_and_background():
    params = procedural.sample_car(0, 1)
    intr = procedural.camera_intrinsics(32)
    image = procedural.render_view(procedural.car_primitives(params), procedural.train_poses(0, 1, 1)[0], intr)
    assert image.shape == (32, 32, 4) and image.dtype == np.float32
    alpha = image[..., 3]
    assert set(np.unique(alpha)) <= {0.0, 0.25, 0.5, 0.75, 1.0}  # 2x2 supersampling
    np.testing.assert_array_equal(image[alpha == 0][:, :3], 1.0)  # white, transparent background
    assert alpha[0, 0] == 0 and alpha[16, 16] == 1.0  # corner empty, object at the centre
    assert 0.05 < (alpha > 0).mean() < 0.6


def test_ray_caster_renders_one_box_where_projected_by_hand():
    # The package re-exports the modules' objects, and the recorded generator name is still the old module's.
    assert procedural.render_view is raycast.render_view and procedural.Primitive is cars.Primitive
    assert cars.Primitive is furniture.Primitive is primitives.Primitive and cars.shade is primitives.shade
    assert (procedural.GENERATOR_NAME, procedural.GENERATOR_VERSION) == ("latent_triplane_ns.procedural", 1)
    # Box x in [-0.5, 0.5], y in [0, 0.5], z in [0, 0.5], seen from (2.6, 0, 0): only its +x face (depth 2.1) is
    # visible, projecting to u in [16, 16 + h], v in [16 - h, 16] with h = fx * 0.5 / 2.1 = 7.81 px at 32 px.
    box = cars.Primitive("box", (-0.5, 0.0, 0.0), (0.5, 0.5, 0.5), (0.2, 0.4, 0.6))
    pose = cameras.look_at_poses(np.array([0.0]), np.array([0.0]))[0]
    intr = cameras.camera_intrinsics(32)
    assert 7.6 < intr.fx * 0.5 / 2.1 < 7.9
    image = raycast.render_view([box], pose, intr, supersample=1)  # one ray through each pixel centre
    expected = np.zeros((32, 32), dtype=bool)
    expected[8:16, 16:24] = True  # centres j + 0.5 with 16 < u < 23.81 and 8.19 < v < 16: upper right of centre
    np.testing.assert_array_equal(image[..., 3], expected.astype(np.float32))
    np.testing.assert_array_equal(image[~expected][:, :3], 1.0)
    # Normal +x: ambient 0.25 + 0.6 * key_x; the fill light (x < 0) does not reach this face.
    key_x = 0.35 / math.sqrt(0.35**2 + 0.55**2 + 0.76**2)
    lit = np.array([0.2, 0.4, 0.6]) * (0.25 + 0.6 * key_x)
    np.testing.assert_allclose(image[expected][:, :3], np.broadcast_to(lit, (64, 3)), atol=1e-6)


def test_key_point_projects_onto_its_part():
    seed, index, size = 2, 5, 64
    scene = procedural.render_scene(seed, index, size, num_train_views=12, num_test_views=1)
    intr = procedural.camera_intrinsics(size)
    roof = procedural.car_key_points(procedural.sample_car(seed, index))["roof_center"]
    view = int(np.argmax(scene.train.poses[:, 2, 3]))  # highest camera: sees the roof
    u, v = procedural.project_points(roof.position[None], scene.train.poses[view], intr)[0]
    pixel = scene.train.images[view, int(v), int(u)]
    assert pixel[3] == 1.0
    np.testing.assert_allclose(pixel[:3], roof.color, atol=1e-6)
    # shade() by hand for the roof (normal +z): ambient 0.25 + 0.6 * key_z + 0.2 * fill_z.
    key_z = 0.76 / math.sqrt(0.35**2 + 0.55**2 + 0.76**2)
    fill_z = 0.45 / math.sqrt(0.6**2 + 0.35**2 + 0.45**2)
    expected = np.clip(
        np.array(procedural.sample_car(seed, index).cabin_color) * (0.25 + 0.6 * key_z + 0.2 * fill_z), 0, 1
    )
    np.testing.assert_allclose(roof.color, expected, atol=1e-12)


def test_scene_determinism():
    a = procedural.render_scene(1, 3, 16, 2, 1)
    b = procedural.render_scene(1, 3, 16, 2, 1)
    c = procedural.render_scene(2, 3, 16, 2, 1)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.test.poses, b.test.poses)
    assert a.info == b.info
    assert not np.array_equal(a.train.images, c.train.images)
    assert not np.array_equal(a.train.poses, c.train.poses)


def _tree_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt,family", [("blender", "cars"), ("srn", "cars"), ("blender", "furniture")])
def test_scene_k_is_the_same_alone_or_in_a_batch(tmp_path, fmt, family):
    kw = dict(seed=4, image_size=16, num_train_views=3, num_test_views=2, fmt=fmt, show_progress=False, family=family)
    alone = procedural.generate_collection(tmp_path / "alone", num_scenes=1, first_scene=2, workers=1, **kw)
    batch = procedural.generate_collection(tmp_path / "batch", num_scenes=4, workers=2, **kw)
    assert [d.name for d in alone.scene_dirs] == ["scene_00002"]
    assert [d.name for d in batch.scene_dirs] == [f"scene_{k:05d}" for k in range(4)]
    assert _tree_bytes(alone.scene_dirs[0]) == _tree_bytes(batch.scene_dirs[2])
    assert _tree_bytes(batch.scene_dirs[1]) != _tree_bytes(batch.scene_dirs[2])
    expected = scene_io.expected_scene_files(fmt, 3, 2)
    assert sorted(_tree_bytes(batch.scene_dirs[0])) == sorted(expected)
    again = procedural.generate_collection(tmp_path / "batch", num_scenes=4, workers=1, **kw)
    assert again.num_generated == 0


def test_blender_files(tmp_path):
    procedural.generate_collection(
        tmp_path, 1, seed=0, image_size=16, num_train_views=3, num_test_views=2, show_progress=False
    )
    scene = tmp_path / "scene_00000"
    meta = json.loads((scene / "transforms_train.json").read_text())
    assert [f["file_path"] for f in meta["frames"]] == ["./train/r_0", "./train/r_1", "./train/r_2"]
    assert meta["fl_x"] == meta["fl_y"] == pytest.approx(8 / math.tan(math.radians(26)))
    assert meta["camera_angle_x"] == pytest.approx(math.radians(52))
    assert (meta["cx"], meta["cy"], meta["w"], meta["h"]) == (8.0, 8.0, 16, 16)
    np.testing.assert_array_equal(meta["frames"][1]["transform_matrix"], procedural.train_poses(0, 0, 3)[1])
    info = json.loads((scene / "scene.json").read_text())
    assert (info["seed"], info["index"], info["format"]) == (0, 0, "blender")
    assert json.loads((tmp_path / "collection.json").read_text())["image_size"] == 16
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_srn_files_are_opencv_with_test_views_first(tmp_path):
    procedural.generate_collection(
        tmp_path, 1, seed=0, image_size=16, num_train_views=3, num_test_views=2, fmt="srn", show_progress=False
    )
    scene = tmp_path / "scene_00000"
    assert sorted(p.name for p in (scene / "rgb").iterdir()) == [f"{k:06d}.png" for k in range(5)]
    lines = (scene / "intrinsics.txt").read_text().splitlines()
    f, cx, cy, zero = (float(v) for v in lines[0].split())
    assert (f, cx, cy, zero) == (pytest.approx(8 / math.tan(math.radians(26))), 8.0, 8.0, 0.0)
    assert lines[3].split() == ["16", "16"]
    cv = np.array([float(v) for v in (scene / "pose" / "000001.txt").read_text().split()]).reshape(4, 4)
    gl = procedural.heldout_poses(0, 0, 2)[1]  # index 1 is the second test view
    np.testing.assert_array_equal(cv[:, 0], gl[:, 0])
    np.testing.assert_array_equal(cv[:, 1:3], -gl[:, 1:3])  # y down, z forward
    np.testing.assert_array_equal(cv[:, 3], gl[:, 3])
    cv_train0 = np.array([float(v) for v in (scene / "pose" / "000002.txt").read_text().split()]).reshape(4, 4)
    np.testing.assert_array_equal(cv_train0[:3, 3], procedural.train_poses(0, 0, 3)[0][:3, 3])


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "scene_00000"
    with pytest.raises(RuntimeError):
        with scene_io.atomic_directory(final) as tmp:
            (tmp / "half_written.png").write_bytes(b"x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_an_existing_folder(tmp_path):
    final = tmp_path / "scene"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with scene_io.atomic_directory(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]
    assert [p.name for p in final.iterdir()] == ["new.txt"]


def test_generate_refuses_other_settings_and_foreign_folders(tmp_path):
    kw = dict(num_scenes=1, image_size=16, num_train_views=2, num_test_views=1, show_progress=False)
    procedural.generate_collection(tmp_path / "c", seed=0, **kw)
    with pytest.raises(CollectionError, match=str(tmp_path / "c" / "collection.json")):
        procedural.generate_collection(tmp_path / "c", seed=1, **kw)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.png").write_bytes(b"")
    with pytest.raises(CollectionError, match=str(tmp_path / "mine")):
        procedural.generate_collection(tmp_path / "mine", seed=0, **kw)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["photo.png"]


# The second family: furniture


def test_furniture_fits_the_box_and_varies():
    pieces = [procedural.sample_furniture(0, k) for k in range(200)]
    for piece in pieces:
        prims = procedural.furniture_primitives(piece)
        lo = np.min([p.lo for p in prims], axis=0)
        hi = np.max([p.hi for p in prims], axis=0)
        assert lo.min() >= -0.9 and hi.max() <= 0.9  # the cars' scene box
        assert abs(lo[2] + hi[2]) < 1e-9 and hi[2] - lo[2] == pytest.approx(piece.height)  # vertically centred
        assert lo[2] == pytest.approx(piece.floor_z)
        assert {p.kind for p in prims} <= {"box", "cylinder", "sphere"} and len(prims) >= 5
        # 2 to 3 colours, and every piece carries a stripe, check or grain pattern of a visibly different colour.
        assert 2 <= len({piece.primary_color, piece.secondary_color, piece.accent_color}) <= 3
        patterned = [p for p in prims if p.pattern in ("stripes", "checker", "grain")]
        assert patterned and all(p.pattern_period >= 0.09 for p in patterned)
        assert max(np.abs(np.subtract(p.color, p.pattern_color)).max() for p in patterned) > 0.15
    assert {p.kind for p in pieces} == set(furniture.FURNITURE_KINDS)
    assert {p.primary_pattern for p in pieces} == {"grain", "stripes", "checker"}
    assert len({p.primary_color for p in pieces}) == 200
    assert np.std([p.height for p in pieces]) > 0.1 and np.std([p.width for p in pieces]) > 0.1
    assert all(procedural.sample_furniture(1, k).primary_color != pieces[k].primary_color for k in range(20))
    assert any(p.kind == "sphere" for k in range(20) for p in procedural.furniture_primitives(pieces[k]))


def test_furniture_is_deterministic_and_differs_from_the_cars():
    a = procedural.render_scene(1, 3, 24, 2, 1, family="furniture")
    b = procedural.render_scene(1, 3, 24, 2, 1, family="furniture")
    car = procedural.render_scene(1, 3, 24, 2, 1)
    assert a.train.images.tobytes() == b.train.images.tobytes() and a.test.images.tobytes() == b.test.images.tobytes()
    assert a.info == b.info and a.info["family"] == "furniture" and car.info["family"] == "cars"
    assert a.info["parameters"]["kind"] in furniture.FURNITURE_KINDS and "kind" not in car.info["parameters"]
    json.dumps(a.info)  # written to scene.json
    np.testing.assert_array_equal(a.train.poses, car.train.poses)  # same cameras, other object
    assert np.abs(a.train.images - car.train.images).max() > 0.5
    assert (a.train.images[..., 3] != car.train.images[..., 3]).mean() > 0.05
    other = procedural.render_scene(1, 4, 24, 2, 1, family="furniture")
    assert not np.array_equal(a.train.images, other.train.images)
    with pytest.raises(InputError, match="boats"):
        procedural.render_scene(1, 3, 24, 2, 1, family="boats")


def test_furniture_alpha_background_and_framing():
    intr = procedural.camera_intrinsics(32)
    for index in range(5):
        _, prims = procedural.sample_object("furniture", 2, index)
        for pose in procedural.heldout_poses(2, index, 2):
            image = procedural.render_view(prims, pose, intr)
            alpha = image[..., 3]
            assert set(np.unique(alpha)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
            np.testing.assert_array_equal(image[alpha == 0][:, :3], 1.0)  # white, transparent background
            assert (image[alpha > 0][:, :3] < 1.0).any(axis=-1).mean() > 0.9  # the object is not white
            border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
            assert not border.any()  # the whole object is in view
            assert 0.03 < (alpha > 0).mean() < 0.6


def test_furniture_has_texture_to_reconstruct():
    # By hand over scenes 0-39 of seed 0 at 48 px (training view 1): the patterns repaint 23% to 83% of the fully
    # covered pixels (mean 62%) with a median change of 0.065 to 0.18, against 9% to 29% (mean 17%, windows and
    # hubs) for the cars; 11 to 60 colours (1/16 steps) per view.
    intr = procedural.camera_intrinsics(48)
    shares = []
    for family in ("furniture", "cars"):
        for index in range(4):
            _, prims = procedural.sample_object(family, 0, index)
            pose = procedural.train_poses(0, index, 3)[1]
            image = procedural.render_view(prims, pose, intr)
            flat = procedural.render_view([dataclasses.replace(p, pattern=None) for p in prims], pose, intr)
            full = image[..., 3] == 1
            change = np.abs(image[..., :3] - flat[..., :3]).max(-1)[full]
            shares.append((change > 0.05).mean())
            if family == "furniture":
                assert shares[-1] > 0.2 and np.median(change[change > 0.05]) > 0.05
                assert len(np.unique(np.round(image[..., :3][full] * 16), axis=0)) >= 10
    assert np.mean(shares[:4]) > 0.4 > np.mean(shares[4:])


def test_a_folder_of_the_other_family_is_refused(tmp_path):
    kw = dict(num_scenes=1, image_size=16, num_train_views=2, num_test_views=1, show_progress=False, workers=1)
    summary = procedural.generate_collection(tmp_path / "f", family="furniture", **kw)
    assert json.loads((tmp_path / "f" / "collection.json").read_text())["family"] == "furniture"
    assert json.loads((summary.scene_dirs[0] / "scene.json").read_text())["family"] == "furniture"
    with pytest.raises(CollectionError, match=str(tmp_path / "f")) as refused:
        procedural.generate_collection(tmp_path / "f", **kw)  # cars, the default
    assert "family 'furniture' instead of 'cars'" in str(refused.value)
    assert procedural.generate_collection(tmp_path / "f", family="furniture", **kw).num_generated == 0
    with pytest.raises(InputError, match="boats"):
        procedural.generate_collection(tmp_path / "b", family="boats", **kw)


def test_collections_written_before_families_are_cars(tmp_path):
    kw = dict(num_scenes=1, image_size=16, num_train_views=2, num_test_views=1, show_progress=False, workers=1)
    summary = procedural.generate_collection(tmp_path, **kw)
    for path in (tmp_path / "collection.json", summary.scene_dirs[0] / "scene.json"):
        meta = json.loads(path.read_text())
        assert meta.pop("family") == "cars"
        path.write_text(json.dumps(meta))
    assert procedural.generate_collection(tmp_path, **kw).num_generated == 0  # kept, not regenerated
    with pytest.raises(CollectionError, match="family 'cars' instead of 'furniture'"):
        procedural.generate_collection(tmp_path, family="furniture", **kw)


# The third family: toys


def test_toys_fit_the_box_vary_and_are_centred():
    from latent_triplane_ns.procedural import toys

    drawn = [toys.sample_toy(0, k) for k in range(200)]
    for toy in drawn:
        prims = toys.toy_primitives(toy)
        lo = np.min([p.lo for p in prims], axis=0)
        hi = np.max([p.hi for p in prims], axis=0)
        assert lo.min() >= -0.9 and hi.max() <= 0.9  # the cars' scene box
        assert abs(lo[2] + hi[2]) < 1e-9 and hi[2] - lo[2] >= toy.height - 1e-3  # centred, its height or more
        assert {p.kind for p in prims} <= {"box", "cylinder", "sphere"} and len(prims) >= 3
        assert any(p.pattern in ("stripes", "checker") for p in prims)
    assert {t.kind for t in drawn} == set(toys.TOY_KINDS)
    assert len({t.main_color for t in drawn}) == 200
    assert all(toys.sample_toy(1, k).main_color != drawn[k].main_color for k in range(20))


def check_family_renders(family: str, others) -> dict:
    """A scene of `family` renders the same twice from its seed, unlike the scene of another seed or of the `others`
    families; each of 8 objects is in view, on a transparent background, and not white. Returns the scene's info."""
    a = procedural.render_scene(1, 3, 24, 2, 1, family=family)
    b = procedural.render_scene(1, 3, 24, 2, 1, family=family)
    assert a.train.images.tobytes() == b.train.images.tobytes() and a.test.images.tobytes() == b.test.images.tobytes()
    assert a.info == b.info and a.info["family"] == family
    json.dumps(a.info)  # written to scene.json
    for other in others:
        assert (
            a.train.images[..., 3] != procedural.render_scene(1, 3, 24, 2, 1, family=other).train.images[..., 3]
        ).mean() > 0.02
    assert not np.array_equal(a.train.images, procedural.render_scene(2, 3, 24, 2, 1, family=family).train.images)
    intr = procedural.camera_intrinsics(32)
    for index in range(8):
        _, prims = procedural.sample_object(family, 2, index)
        image = procedural.render_view(prims, procedural.heldout_poses(2, index, 1)[0], intr)
        alpha = image[..., 3]
        assert not np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]]).any()
        assert 0.02 < (alpha > 0).mean() < 0.6
        assert (image[alpha > 0][:, :3] < 1.0).any(axis=-1).mean() > 0.9
    return a.info


def test_toys_generate_deterministically_from_their_seed_and_differ_from_the_other_families():
    check_family_renders("toys", ("cars", "furniture"))


# The fourth family: kitchen objects (evaluation only)


def test_kitchen_objects_fit_the_box_vary_and_are_centred():
    from latent_triplane_ns.procedural import kitchen, toys

    assert kitchen._STREAM not in (1, 2, furniture._STREAM, toys._STREAM)  # its own random numbers
    drawn = [kitchen.sample_kitchen(0, k) for k in range(200)]
    for item in drawn:
        prims = kitchen.kitchen_primitives(item)
        assert all(np.all(np.less(p.lo, p.hi)) for p in prims)  # no part turned inside out
        lo = np.min([p.lo for p in prims], axis=0)
        hi = np.max([p.hi for p in prims], axis=0)
        assert lo.min() >= -0.9 and hi.max() <= 0.9  # the cars' scene box
        np.testing.assert_allclose(lo + hi, 0.0, atol=1e-9)  # its bounding box centred at the origin
        assert hi[2] - lo[2] >= item.height - 1e-3  # its height or more (a knob adds to it)
        assert {p.kind for p in prims} <= {"box", "cylinder", "sphere"} and len(prims) >= 3
        patterned = {p.pattern for p in prims} - {None}
        assert patterned == ({item.pattern} if item.pattern else set())
        if item.kind in ("mug", "teapot"):  # a handle sticks out on one side
            assert (hi - lo)[:2].max() > 2 * item.radius + 0.1
    assert {t.kind for t in drawn} == set(kitchen.KITCHEN_KINDS)
    assert {t.pattern for t in drawn} == {None, "stripes", "checker"}
    assert {t.count for t in drawn if t.kind == "vase"} == {1, 2, 3}
    assert {t.handle for t in drawn if t.kind in ("mug", "teapot")} == {"boxes", "bar"}
    assert {t.round_body for t in drawn if t.kind == "teapot"} == {True, False}
    assert len({t.main_color for t in drawn}) == 200
    assert all(kitchen.sample_kitchen(1, k).main_color != drawn[k].main_color for k in range(20))
    # Glazes and glass rather than the toys' plastics: never as saturated and bright as the brightest toys.
    saturation = [(max(c) - min(c)) / max(c) for t in drawn for c in (t.main_color, t.second_color)]
    toy_saturation = [(max(c) - min(c)) / max(c) for c in (toys.sample_toy(0, k).main_color for k in range(200))]
    assert max(saturation) <= 0.8 + 1e-9 < max(toy_saturation)
    assert np.mean(saturation) < np.mean(toy_saturation)


def test_kitchen_generates_deterministically_from_its_seed_and_differs_from_the_other_families():
    info = check_family_renders("kitchen", ("cars", "furniture", "toys"))
    assert info["parameters"]["kind"] in ("mug", "bottle", "vase", "teapot", "jar")


def test_ltn_generate_writes_a_kitchen_collection(tmp_path):
    import tyro

    from latent_triplane_ns.scripts.generate import GenerateConfig

    assert "kitchen" in procedural.FAMILIES
    args = ["--family", "kitchen", "--output", str(tmp_path / "k"), "--num-scenes", "2", "--seed", "5"]
    args += ["--image-size", "16", "--num-train-views", "1", "--num-test-views", "1", "--workers", "1"]
    tyro.cli(GenerateConfig, args=args).main()
    collection = json.loads((tmp_path / "k" / "collection.json").read_text())
    assert (collection["family"], collection["seed"]) == ("kitchen", 5)
    for index in range(2):
        info = json.loads((tmp_path / "k" / scene_io.scene_name(index) / "scene.json").read_text())
        assert info["family"] == "kitchen" and info["index"] == index
        assert info["parameters"] == json.loads(json.dumps(dataclasses.asdict(procedural.sample_kitchen(5, index))))
    with pytest.raises(CollectionError, match="family 'kitchen' instead of 'toys'"):
        procedural.generate_collection(
            tmp_path / "k", 2, seed=5, image_size=16, num_train_views=1, num_test_views=1, family="toys", workers=1
        )
