"""Micro-Macro Tri-Plane field: per-scene micro planes plus a shared basis, decoded by one tiny MLP."""

from __future__ import annotations

import math
from typing import Dict, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.field_components.mlp import MLP
from nerfstudio.utils.external import TCNN_EXISTS
from torch import Tensor, nn

from latent_triplane_ns.errors import InputError

PLANE_AXES = ((0, 1), (0, 2), (1, 2))
"""Coordinates each plane is indexed by: xy, xz, yz (nerfstudio's order; the EG3D xz/zx duplicate is not copied)."""


class _SceneRows(torch.autograd.Function):
    """Rows of a per-scene parameter whose gradient is a sparse tensor holding only those rows."""

    @staticmethod
    def forward(ctx, param: Tensor, rows: Tensor) -> Tensor:
        ctx.save_for_backward(rows)
        ctx.shape = param.shape
        return param.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (rows,) = ctx.saved_tensors
        return torch.sparse_coo_tensor(rows[None], grad, ctx.shape, check_invariants=False), None


def scene_rows(param: Float[Tensor, " S *rest"], rows: Int[Tensor, " k"]) -> Float[Tensor, " k *rest"]:
    """`param[rows]` for distinct rows, with a sparse gradient of `param`'s shape: a dense one would cost memory
    and time in proportion to every scene of the collection at every step."""
    return _SceneRows.apply(param, rows)


class MicroMacroTriplanes(nn.Module):
    """Tri-Planes for many scenes: T(s) = concat(T_mic(s), sum_i W(s)_i B_i).

    Args:
        num_scenes: number of scenes S.
        resolution: side R of every plane.
        micro_features: F_mic, per-scene features per plane.
        macro_features: F_mac, features per plane of each basis plane set (0 when num_basis is 0).
        num_basis: M, number of shared basis plane sets (0: per-scene planes only).
        init_scale: standard deviation of the planes' initial values.
    """

    def __init__(
        self,
        num_scenes: int,
        resolution: int,
        micro_features: int,
        macro_features: int,
        num_basis: int,
        init_scale: float = 0.1,
    ):
        super().__init__()
        if num_scenes < 1:
            raise InputError("a Tri-Plane field needs at least one scene")
        if (num_basis == 0) != (macro_features == 0):
            raise InputError(f"num_basis={num_basis} and macro_features={macro_features}: both or neither must be 0")
        if micro_features + macro_features < 1:
            raise InputError("the planes need at least one feature")
        self.num_scenes, self.resolution, self.num_basis = num_scenes, resolution, num_basis
        self.micro = nn.Parameter(init_scale * torch.randn(num_scenes, 3, micro_features, resolution, resolution))
        self.basis = nn.Parameter(init_scale * torch.randn(num_basis, 3, macro_features, resolution, resolution))
        # Weights start at 1/sqrt(M) so the macro features start at the micro features' scale.
        self.weights = nn.Parameter(torch.randn(num_scenes, num_basis) / max(num_basis, 1) ** 0.5)

    @property
    def num_features(self) -> int:
        return self.micro.shape[2] + self.basis.shape[2]

    def planes(self, scenes: Int[Tensor, " k"]) -> Float[Tensor, "k 3 F R R"]:
        """The fused planes of the given scenes (distinct, ascending, as `torch.unique` gives them).

        The per-scene parameters get sparse gradients holding only these scenes' rows, so that a step's backward
        and optimiser update cost the same whatever the number of scenes in the collection.
        """
        micro = scene_rows(self.micro, scenes)
        if self.num_basis == 0:
            return micro
        macro = torch.einsum("km,mpfhw->kpfhw", scene_rows(self.weights, scenes), self.basis)
        return torch.cat([micro, macro], dim=2)

    def forward(
        self, positions: Float[Tensor, "n *samples 3"], scene_index: Int[Tensor, " n"]
    ) -> tuple[Float[Tensor, "n *samples F"], Tensor, Tensor]:
        """Samples summed plane features at positions in [-1, 1]^3, each row of positions in its own scene.

        Args:
            positions: n rows (rays) of points, e.g. (n, 3) or (n, samples, 3).
            scene_index: the scene of each row.

        Returns:
            features (n, *samples, F); the scenes present (k,); their fused planes (k, 3, F, R, R), for regularisers.
        """
        if scene_index.numel() and (int(scene_index.min()) < 0 or int(scene_index.max()) >= self.num_scenes):
            raise IndexError(
                f"scene index {int(scene_index.max())} out of range: this field holds {self.num_scenes} scenes"
            )
        batch_shape = positions.shape[:-1]
        scenes, local = torch.unique(scene_index, return_inverse=True)
        planes = self.planes(scenes)  # k 3 F R R
        atlas, columns = _plane_atlas(planes)  # 3 F H W
        # Each scene's planes are one tile of a zero-separated atlas: a point reads its own tile only (points outside
        # the box may reach a neighbouring tile, but the field gives them zero density, hence zero weight).
        row = (local // columns).to(positions.dtype)
        column = (local % columns).to(positions.dtype)
        shape = (-1, *([1] * (len(batch_shape) - 1)))
        row, column = (
            row.view(shape).expand(batch_shape).reshape(-1),
            column.view(shape).expand(batch_shape).reshape(-1),
        )
        points = positions.reshape(-1, 3)
        tile, height, width = self.resolution + 1, atlas.shape[-2], atlas.shape[-1]
        grids = []
        for a, b in PLANE_AXES:
            x = column * tile + (points[:, a] + 1.0) * 0.5 * (self.resolution - 1)
            y = row * tile + (points[:, b] + 1.0) * 0.5 * (self.resolution - 1)
            grids.append(torch.stack([2.0 * x / (width - 1) - 1.0, 2.0 * y / (height - 1) - 1.0], dim=-1))
        sampled = F.grid_sample(
            atlas, torch.stack(grids)[:, None], mode="bilinear", padding_mode="zeros", align_corners=True
        )  # 3 F 1 N
        features = sampled[:, :, 0, :].sum(dim=0).transpose(0, 1)  # N F
        return features.view(*batch_shape, -1), scenes, planes


class TriplaneField(nn.Module):
    """Tri-Planes plus a tiny MLP mapping the summed plane feature to density and C output channels.

    Args:
        triplanes: the planes of every scene.
        out_channels: C, latent channels (3 for RGB).
        hidden_width: width of the MLP's hidden layer.
        implementation: 'auto' picks tiny-cuda-nn's fused MLP when it imports, PyTorch otherwise.
    """

    def __init__(
        self,
        triplanes: MicroMacroTriplanes,
        out_channels: int,
        hidden_width: int = 64,
        implementation: Literal["auto", "tcnn", "torch"] = "auto",
    ):
        super().__init__()
        self.triplanes = triplanes
        self.out_channels = out_channels
        if implementation == "auto":
            implementation = "tcnn" if TCNN_EXISTS else "torch"
        self.mlp = MLP(
            in_dim=triplanes.num_features,
            num_layers=2,
            layer_width=hidden_width,
            out_dim=1 + out_channels,
            activation=nn.Softplus(),
            out_activation=None,
            implementation=implementation,
        )

    def forward(self, positions: Float[Tensor, "n *samples 3"], scene_index: Int[Tensor, " n"]) -> Dict[str, Tensor]:
        """Density (n, *samples, 1) and colours (n, *samples, C) in [0, 1] at positions in [-1, 1]^3, each row of
        positions in its own scene; zero density outside the box."""
        features, scenes, planes = self.triplanes(positions, scene_index)
        raw = self.mlp(features.reshape(-1, features.shape[-1])).float().view(*features.shape[:-1], -1)
        inside = (positions.abs() <= 1.0).all(dim=-1, keepdim=True)
        density = F.softplus(raw[..., :1] - 1.0) * inside
        colors = torch.sigmoid(raw[..., 1:]) * 1.002 - 0.001
        return {"density": density, "colors": colors, "scenes": scenes, "planes": planes}


def _plane_atlas(planes: Float[Tensor, "k 3 F R R"]) -> tuple[Float[Tensor, "3 F H W"], int]:
    """Lays k scenes' planes out as tiles of a near-square grid, each tile followed by a zero row and column.

    A 2D atlas samples about 3x faster than a (scene, v, u) volume, and a near-square layout keeps the atlas
    coordinates small enough that float32 addresses each texel exactly even for thousands of scenes.
    """
    k, _, features, res, _ = planes.shape
    columns = math.ceil(math.sqrt(k))
    rows = math.ceil(k / columns)
    tiles = F.pad(planes, (0, 1, 0, 1))  # k 3 F R+1 R+1
    if rows * columns > k:
        tiles = torch.cat([tiles, tiles.new_zeros(rows * columns - k, *tiles.shape[1:])])
    tiles = tiles.view(rows, columns, 3, features, res + 1, res + 1).permute(2, 3, 0, 4, 1, 5)
    return tiles.reshape(3, features, rows * (res + 1), columns * (res + 1)), columns


def plane_tv(planes: Float[Tensor, "k 3 F R R"]) -> Tensor:
    """Total variation of fused planes, summed over scenes and normalised by (H + W) as in the paper."""
    dh = (planes[..., 1:, :] - planes[..., :-1, :]).pow(2).sum()
    dw = (planes[..., :, 1:] - planes[..., :, :-1]).pow(2).sum()
    return (dh + dw) / (planes.shape[-1] + planes.shape[-2])
