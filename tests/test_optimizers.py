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
