"""Contact sheets: ground truth, decoded render and amplified error of held-out views, one row per view."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latent_triplane_ns.errors import InputError
from latent_triplane_ns.evaluation import SceneEvaluator

HEADER_HEIGHT = 18
"""Height in pixels of the band above the first row that names the three columns."""
CAPTION_HEIGHT = 18
"""Height in pixels of the band above every row that gives its scene, view and PSNR."""
MIN_TILE_SIDE = 128
"""Tiles are enlarged by a whole factor (nearest neighbour) until their shorter side reaches this, so that captions
fit above tiny images and their pixels stay visible."""
BACKGROUND = (24, 24, 24)
"""Colour of the caption bands."""
TEXT = (235, 235, 235)
"""Colour of the captions."""


@dataclass
class SheetRow:
    """One held-out view: its images (H, W, 3) in [0, 1] and the model's PSNR of the decoded render."""

    scene_name: str
    image_index: int
    psnr: float
    ground_truth: np.ndarray
    render: np.ndarray

    @property
    def caption(self) -> str:
        return f"{self.scene_name}  held-out view {self.image_index}  PSNR {self.psnr:.2f} dB"


def sheet_rows(pipeline, indices: Sequence[int]) -> List[SheetRow]:
    """Renders held-out views with the pipeline's model and scores them with the model's own metrics (the shared
    per-scene evaluator, as ns-eval does).

    Args:
        pipeline: a loaded latent pipeline (`eval_setup`).
        indices: held-out image indices.
    """
    evaluator = SceneEvaluator(pipeline.model, pipeline.datamanager, indices)
    names = list(getattr(pipeline.model, "scene_names", None) or [])
    return [
        SheetRow(
            scene_name=names[view.scene] if view.scene < len(names) else f"scene {view.scene}",
            image_index=view.index,
            psnr=view.metrics["psnr"],
            ground_truth=view.ground_truth.float().cpu().numpy(),
            render=view.render.float().cpu().numpy(),
        )
        for view in evaluator.views()
    ]


def tile_scale(height: int, width: int) -> int:
    """Whole enlargement factor of a tile of this size (see MIN_TILE_SIDE)."""
    return max(1, math.ceil(MIN_TILE_SIDE / max(1, min(height, width))))


def sheet_size(num_rows: int, height: int, width: int) -> Tuple[int, int]:
    """(width, height) in pixels of the sheet of `num_rows` rows of H x W views."""
    scale = tile_scale(height, width)
    return 3 * width * scale, HEADER_HEIGHT + num_rows * (CAPTION_HEIGHT + height * scale)


def error_image(ground_truth: np.ndarray, render: np.ndarray, gain: float) -> np.ndarray:
    """Absolute error averaged over the colour channels, times `gain`, clipped to [0, 1], as a grey image."""
    error = np.clip(np.abs(render - ground_truth).mean(axis=-1, keepdims=True) * gain, 0.0, 1.0)
    return np.repeat(error, 3, axis=-1)


def compose_sheet(rows: Sequence[SheetRow], error_gain: float = 4.0) -> Image.Image:
    """Lays the rows out as ground truth | decoded render | |error| x gain, each row under its caption.

    Args:
        rows: the views, all of one size.
        error_gain: factor the absolute error is multiplied by before display.
    """
    if not rows:
        raise InputError("no held-out views to put on the contact sheet")
    height, width = rows[0].ground_truth.shape[:2]
    if any(row.ground_truth.shape[:2] != (height, width) for row in rows):
        raise ValueError("every view of a contact sheet must have the same size")
    scale = tile_scale(height, width)
    sheet = Image.new("RGB", sheet_size(len(rows), height, width), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    tile_w = width * scale
    titles = ("ground truth", "decoded render", f"|error| x{error_gain:g}")
    for column, title in enumerate(titles):
        draw.text((column * tile_w + 4, 3), title, fill=TEXT, font=font)
    top = HEADER_HEIGHT
    for row in rows:
        draw.text((4, top + 3), row.caption, fill=TEXT, font=font)
        top += CAPTION_HEIGHT
        tiles = (row.ground_truth, row.render, error_image(row.ground_truth, row.render, error_gain))
        for column, tile in enumerate(tiles):
            image = Image.fromarray((np.clip(tile, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
            sheet.paste(image.resize((tile_w, height * scale), Image.NEAREST), (column * tile_w, top))
        top += height * scale
    return sheet
