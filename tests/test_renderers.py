"""Latent compositor against a hand-computed two-sample case."""

import math

import torch
from nerfstudio.cameras.rays import Frustums, RaySamples

from latent_triplane_ns.renderers import LatentRenderer


def test_two_samples_by_hand():
    # Densities with sigma * delta = ln 2: alpha = 1/2 each, so w1 = 1/2, w2 = (1/2)(1/2) = 1/4, background 1/4.
    ones = torch.ones(1, 2, 1)
    starts = torch.tensor([[[0.0], [1.0]]])
    samples = RaySamples(
        frustums=Frustums(
            origins=torch.zeros(1, 2, 3),
            directions=torch.tensor([0.0, 0.0, 1.0]).expand(1, 2, 3),
            starts=starts,
            ends=starts + ones,
            pixel_area=ones,
        ),
        deltas=ones,
    )
    weights = samples.get_weights(torch.full((1, 2, 1), math.log(2.0)))
    assert torch.allclose(weights.view(-1), torch.tensor([0.5, 0.25]))
    values = torch.tensor([[[1.0, 0.0, 0.4, 0.8], [0.0, 1.0, 0.4, 0.0]]])
    background = torch.tensor([0.2, 0.2, 0.4, 1.0])
    out = LatentRenderer()(values, weights, background)
    # 0.5 * c1 + 0.25 * c2 + 0.25 * bg
    expected = torch.tensor([[0.55, 0.30, 0.40, 0.65]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_empty_ray_is_background():
    out = LatentRenderer()(torch.rand(3, 5, 4), torch.zeros(3, 5, 1), torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert torch.allclose(out, torch.tensor([0.1, 0.2, 0.3, 0.4]).expand(3, 4))
