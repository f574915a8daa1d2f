"""Micro-Macro Tri-Plane field: shapes, plane axes, scene lookup, fusion."""

import pytest
import torch
import torch.nn.functional as F

from latent_triplane_ns.field import PLANE_AXES, MicroMacroTriplanes, TriplaneField, plane_tv


def make_planes(num_scenes=3, res=8, mic=2, mac=3, basis=4):
    torch.manual_seed(0)
    return MicroMacroTriplanes(num_scenes, res, mic, mac, basis)


def test_shapes_of_planes_and_features():
    planes = make_planes()
    fused = planes.planes(torch.tensor([0, 2]))
    assert fused.shape == (2, 3, 5, 8, 8)
    features, scenes, used = planes(torch.rand(7, 3) * 2 - 1, torch.tensor([2, 0, 2, 2, 0, 0, 2]))
    assert features.shape == (7, 5)
    assert scenes.tolist() == [0, 2]
    assert used.shape == (2, 3, 5, 8, 8)


def test_fused_planes_are_micro_concat_weighted_basis():
    planes = make_planes()
    s = 1
    expected_macro = sum(planes.weights[s, i] * planes.basis[i] for i in range(4))
    fused = planes.planes(torch.tensor([s]))[0]
    assert torch.allclose(fused[:, :2], planes.micro[s])
    assert torch.allclose(fused[:, 2:], expected_macro, atol=1e-6)


def test_features_read_only_the_rays_own_scene():
    planes = make_planes()
    positions = torch.rand(6, 3) * 2 - 1
    scene_index = torch.tensor([0, 1, 2, 1, 0, 2])
    features, _, _ = planes(positions, scene_index)
    for n in range(6):
        fused = planes.planes(scene_index[n : n + 1])[0]
        expected = 0
        for p, (a, b) in enumerate(PLANE_AXES):
            grid = positions[n, [a, b]].view(1, 1, 1, 2)
            expected = expected + F.grid_sample(fused[p][None], grid, align_corners=True)[0, :, 0, 0]
        assert torch.allclose(features[n], expected, atol=1e-5)


@pytest.mark.parametrize("plane", [0, 1, 2])
def test_each_plane_responds_only_to_its_own_two_axes(plane):
    planes = MicroMacroTriplanes(1, 16, 4, 0, 0)
    with torch.no_grad():
        keep = torch.zeros(3, 1, 1, 1)
        keep[plane] = 1
        planes.micro.mul_(keep)
    a, b = PLANE_AXES[plane]
    other = ({0, 1, 2} - {a, b}).pop()
    base = torch.tensor([[0.1, -0.3, 0.45]])
    scene = torch.zeros(1, dtype=torch.long)
    f0 = planes(base, scene)[0]
    moved_other = base.clone()
    moved_other[0, other] = -0.8
    assert torch.allclose(planes(moved_other, scene)[0], f0)
    for axis in (a, b):
        moved = base.clone()
        moved[0, axis] = -0.8
        assert not torch.allclose(planes(moved, scene)[0], f0)


def test_absent_scenes_get_no_gradient():
    planes = make_planes()
    features, _, _ = planes(torch.rand(5, 3) * 2 - 1, torch.tensor([0, 0, 2, 2, 2]))
    features.sum().backward()
    assert planes.micro.grad[1].abs().sum() == 0
    assert planes.weights.grad[1].abs().sum() == 0
    assert planes.micro.grad[0].abs().sum() > 0 and planes.micro.grad[2].abs().sum() > 0


def test_field_outputs_and_zero_density_outside_box():
    field = TriplaneField(make_planes(), out_channels=4, hidden_width=16, implementation="torch")
    positions = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.2, -1.01, 0.3]])
    out = field(positions, torch.tensor([0, 1, 2]))
    assert out["density"].shape == (3, 1) and out["colors"].shape == (3, 4)
    assert out["density"][0] > 0
    assert out["density"][1] == 0 and out["density"][2] == 0
    assert (out["colors"] >= -0.001).all() and (out["colors"] <= 1.001).all()


def test_bad_sizes_and_scene_index_raise():
    with pytest.raises(ValueError, match="both or neither"):
        MicroMacroTriplanes(2, 8, 4, 3, 0)
    planes = make_planes()
    with pytest.raises(IndexError, match="out of range"):
        planes(torch.zeros(1, 3), torch.tensor([3]))


def test_plane_tv_matches_hand_count():
    planes = torch.zeros(1, 1, 1, 2, 2)
    planes[0, 0, 0, 0, 0] = 1.0  # differs from its right and lower neighbour by 1
    assert float(plane_tv(planes)) == pytest.approx(2.0 / 4.0)


def test_thousands_of_scenes_in_one_batch_read_their_own_planes_exactly():
    torch.manual_seed(0)
    planes = MicroMacroTriplanes(2000, 8, 2, 1, 3)
    positions = torch.rand(2000, 3) * 2 - 1
    scene_index = torch.randperm(2000)
    features, scenes, _ = planes(positions, scene_index)
    assert len(scenes) == 2000
    for n in (0, 777, 1999):
        fused = planes.planes(scene_index[n : n + 1])[0]
        expected = sum(
            F.grid_sample(fused[p][None], positions[n, [a, b]].view(1, 1, 1, 2), align_corners=True)[0, :, 0, 0]
            for p, (a, b) in enumerate(PLANE_AXES)
        )
        assert torch.allclose(features[n], expected, atol=1e-4)
