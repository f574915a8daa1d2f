"""Per-frame masks (nerfstudio's `mask_path`): which pixels of a view carry a loss, in RGB and on the latent grid."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from latent_triplane_ns.images import ImageFileError
from latent_triplane_ns.scene_io import MissingFileError


def read_mask(path: Path, size: Optional[Tuple[int, int]] = None) -> Float[Tensor, "H W 1"]:
    """A mask file as (H, W, 1) floats: 1 where the pixel counts (non-zero in the file), 0 where it does not, as
    nerfstudio reads masks. With `size` ((width, height), its image's), a mask of another size is refused.

    Raises:
        MissingFileError: no such file.
        ImageFileError: not an image, or of another size than its image.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: mask file does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            if size is not None and image.size != tuple(size):
                raise ImageFileError(
                    f"{path}: the mask is {image.size[0]}x{image.size[1]}, its image {size[0]}x{size[1]} (width x "
                    "height): a mask must have its image's size"
                )
            values = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{path}: cannot be decoded as a mask image ({err})") from err
    return torch.from_numpy((values > 0).astype(np.float32))[..., None]


def latent_mask(masks: Float[Tensor, "N H W 1"], factor: int) -> Float[Tensor, "N h w 1"]:
    """Masks on the latent grid: each latent pixel's weight is the share of its `factor` x `factor` pixels that count.

    Examples:
        >>> mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]).view(1, 2, 4, 1)
        >>> latent_mask(mask, 2).view(-1).tolist()
        [0.75, 0.0]
    """
    pooled = F.avg_pool2d(masks.permute(0, 3, 1, 2), factor)
    return pooled.permute(0, 2, 3, 1).contiguous()


def masked_mse(
    pred: Float[Tensor, "*bs C"], target: Float[Tensor, "*bs C"], weight: Optional[Float[Tensor, "*bs 1"]] = None
) -> Float[Tensor, ""]:
    """The mean squared error over the pixels that count, each weighted by `weight` (None: every pixel, F.mse_loss).
    Pixels of weight 0 change neither the loss nor its gradient; a batch without any pixel that counts gives 0.

    Examples:
        >>> pred, target = torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 1.0], [9.0, 9.0, 9.0]])
        >>> float(masked_mse(pred, target, torch.tensor([[1.0], [0.0]])))
        1.0
    """
    if weight is None:
        return F.mse_loss(pred, target)
    weight = weight.to(pred)
    squared = ((pred - target) ** 2 * weight).sum()
    return squared / (weight.expand_as(pred).sum()).clamp_min(1e-8)
