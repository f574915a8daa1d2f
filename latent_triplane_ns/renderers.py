"""Latent compositor: nerfstudio's RGB renderer asserts 3 channels, latent images have C."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn


class LatentRenderer(nn.Module):
    """Alpha-composites per-sample C-channel values over a background value, one for all rays or one per ray.

    Ignores nerfstudio's RGB `BACKGROUND_COLOR_OVERRIDE` (a 3-vector that means nothing in latent space).
    """

    def forward(
        self,
        values: Float[Tensor, "*bs num_samples C"],
        weights: Float[Tensor, "*bs num_samples 1"],
        background: Float[Tensor, "*#bs C"],
    ) -> Float[Tensor, "*bs C"]:
        """Returns sum_i w_i c_i + (1 - sum_i w_i) * background.

        Examples:
            >>> values = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # 1 ray, 2 samples, C=2
            >>> weights = torch.tensor([[[0.5], [0.25]]])
            >>> LatentRenderer()(values, weights, torch.tensor([0.2, 0.2]))
            tensor([[0.5500, 0.3000]])
        """
        accumulation = weights.sum(dim=-2)
        return (weights * values).sum(dim=-2) + (1.0 - accumulation) * background.to(values)
