"""SceneSparseAdam: no momentum leak into scenes absent from a step."""

import torch

from latent_triplane_ns.optimizers import SceneSparseAdam


def test_absent_scene_does_not_move_and_present_scene_matches_adam():
    torch.manual_seed(0)
    planes = torch.nn.Parameter(torch.randn(3, 4))
    reference = torch.nn.Parameter(planes[0].detach().clone())
    sparse = SceneSparseAdam([planes], lr=0.1)
    dense = torch.optim.Adam([reference], lr=0.1, eps=1e-15)
    # Step 1: every scene has a gradient (so all have momentum); later steps: only scene 0.
    for step in range(4):
        grad = torch.randn(3, 4)
        if step > 0:
            grad[1:] = 0
        planes.grad = grad.clone()
        reference.grad = grad[0].clone()
        before = planes.detach().clone()
        sparse.step()
        dense.step()
        if step > 0:
            assert torch.equal(planes[1:], before[1:])
        assert torch.allclose(planes[0], reference, atol=1e-6)
    assert sparse.state[planes]["step"].tolist() == [4, 1, 1]


def test_the_fields_sparse_gradient_updates_as_the_dense_one_does():
    from latent_triplane_ns.field import scene_rows

    torch.manual_seed(0)
    start = torch.randn(5, 2, 3)
    sparse_planes, dense_planes = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    sparse, dense = SceneSparseAdam([sparse_planes], lr=0.1), SceneSparseAdam([dense_planes], lr=0.1)
    rows = torch.tensor([1, 3])
    weight = torch.randn(2, 2, 3)
    for _ in range(3):
        (scene_rows(sparse_planes, rows) * weight).sum().backward()
        (dense_planes[rows] * weight).sum().backward()
        assert sparse_planes.grad.is_sparse and not dense_planes.grad.is_sparse
        assert torch.equal(sparse_planes.grad.to_dense(), dense_planes.grad)
        sparse.step()
        dense.step()
        sparse_planes.grad = dense_planes.grad = None
    assert torch.allclose(sparse_planes, dense_planes, atol=1e-7)
    assert torch.equal(sparse_planes[[0, 2, 4]], start[[0, 2, 4]])  # rows never in a batch never move
    assert sparse.state[sparse_planes]["step"].tolist() == [0, 3, 0, 3, 0]
