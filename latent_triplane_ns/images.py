"""Image files decoded with their real mode (palette, 16-bit, grey, with or without alpha), and refused by name
when they cannot be decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.typing as npt
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from latent_triplane_ns.errors import InputError


class ImageFileError(InputError):
    """An image file that cannot be decoded (truncated, damaged, or of a mode that has no colour meaning)."""


def read_rgb_uint8(path: Path) -> npt.NDArray[np.uint8]:
    """An image file as (H, W, 3) or (H, W, 4) uint8 RGB(A), whatever its mode: palette images through their
    palette (alpha from their transparency), 16-bit grey scaled from [0, 65535], grey repeated to RGB.

    Raises:
        ImageFileError: the file cannot be decoded, or its mode is not a colour image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P" or mode == "PA":
                has_alpha = mode == "PA" or "transparency" in image.info
                image = image.convert("RGBA" if has_alpha else "RGB")
                mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                values = np.asarray(image, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
                grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            if mode in ("1", "L", "LA", "RGB", "RGBA"):
                array = np.asarray(image.convert("RGBA" if mode in ("LA", "RGBA") else "RGB"), dtype=np.uint8)
                return array
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{path}: cannot be decoded as an image ({err})") from err
    raise ImageFileError(f"{path}: image mode {mode!r} is not a colour image this plugin can read")


def check_images(paths: Sequence[Path]) -> None:
    """Decodes every file once, so that a damaged one is refused by name before any training step."""
    for path in paths:
        read_rgb_uint8(Path(path))


class ImageDataset(InputDataset):
    """nerfstudio's InputDataset whose images are decoded with their real mode (`read_rgb_uint8`)."""

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        if self.scale_factor != 1.0:
            return super().get_numpy_image(image_idx)
        return read_rgb_uint8(Path(self._dataparser_outputs.image_filenames[image_idx]))
