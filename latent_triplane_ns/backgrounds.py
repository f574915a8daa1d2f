"""Scene backgrounds: the colour behind each scene's object, read from its views' borders or set by the user, and the
background latent that the renderer composites every ray of that scene over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.data.datasets.base_dataset import InputDataset
from torch import Tensor, nn

from latent_triplane_ns.errors import InputError

BackgroundMode = Literal["white", "black", "color", "border", "learned", "random"]
BORDER_VIEWS = 8
"""Training views per scene whose borders are read (evenly spread over the scene's views)."""
BORDER_TOLERANCE = 0.1
"""Largest difference, in any channel on the [0, 1] scale, between a border and the background setting's colour,
and between a border pixel and its scene's border colour, that still counts as the same colour."""
UNIFORM_SHARE = 0.5
"""Share of a scene's border pixels within the tolerance of their median below which its border is not one colour."""
PALETTE_SEED = 0
"""Seed of the colours of background 'random' (the same colours in every run, so that the latent cache is reused)."""


@dataclass
class SceneBorders:
    """What the borders of each scene's training views show."""

    colors: Float[Tensor, "S 3"]
    """Median colour of the border pixels, views with alpha composited over `alpha_color`."""
    uniform: Float[Tensor, " S"]
    """Share of the border pixels within `BORDER_TOLERANCE` of that median."""
    opaque: Tensor
    """(S,) bool: whether the scene's views have no transparent pixel (no alpha channel, or alpha 1 everywhere)."""
    masked: bool = False
    """Whether the views have masks (then a border of many colours carries no loss and needs no warning)."""
    keyed: Optional[Tensor] = None
    """(S,) bool, or None for none: the scenes whose training views get their alpha by keying out the border colour
    (`key_alpha`); they count as having alpha, so background 'random' puts colours behind them."""


def border_pixels(image: Float[Tensor, "H W 3"], width: int = 0) -> Float[Tensor, "P 3"]:
    """The pixels of an image's outer ring, `width` pixels wide (0: a 32nd of the shorter side, at least 1).

    Examples:
        >>> image = torch.zeros(4, 4, 3); image[1:3, 1:3] = 1.0
        >>> border_pixels(image, 1).shape, float(border_pixels(image, 1).max())
        (torch.Size([12, 3]), 0.0)
    """
    height, image_width = image.shape[:2]
    width = width or max(1, min(height, image_width) // 32)
    ring = torch.ones(height, image_width, dtype=torch.bool)
    ring[width : height - width, width : image_width - width] = False
    return image[ring]


def key_alpha(
    image: Float[Tensor, "H W 3"], color: Float[Tensor, " 3"], tolerance: float = BORDER_TOLERANCE
) -> Float[Tensor, "H W 1"]:
    """An alpha for a view without one, keyed from its background colour: 0 on the pixels within `tolerance` of
    `color` (in every channel) that connect to the image's outer ring through such pixels, 1 elsewhere. Pixels of the
    background's colour inside the object, cut off from the ring, stay opaque.

    Examples:
        >>> image = torch.zeros(5, 5, 3); image[1:4, 1:4] = 1.0; image[2, 2] = 0.0
        >>> key_alpha(image, torch.zeros(3))[..., 0].int().tolist()[1:4]
        [[0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0]]
    """
    from scipy import ndimage

    near = ((image - color.view(1, 1, 3)).abs().amax(dim=-1) <= tolerance).numpy()
    labels, _ = ndimage.label(near)
    ring = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, ring[ring > 0])
    return torch.from_numpy(~background).float().unsqueeze(-1)


def read_borders(dataset: InputDataset, scene_index: Tensor, alpha_color: Tensor) -> SceneBorders:
    """Reads up to `BORDER_VIEWS` views of each scene (indices 0..S-1 in `scene_index`, one per image)."""
    num_scenes = int(scene_index.max()) + 1 if len(scene_index) else 0
    colors, uniform = torch.ones(num_scenes, 3), torch.ones(num_scenes)
    opaque = torch.ones(num_scenes, dtype=torch.bool)
    for scene in range(num_scenes):
        views = (scene_index == scene).nonzero().view(-1)
        if len(views) == 0:
            continue
        chosen = views[torch.linspace(0, len(views) - 1, min(BORDER_VIEWS, len(views))).round().long()]
        rings = []
        for index in chosen.tolist():
            image = torch.from_numpy(np.asarray(dataset.get_numpy_image(index), dtype=np.float32) / 255.0)
            if image.shape[-1] == 4:
                alpha = image[..., 3:]
                opaque[scene] &= bool((alpha >= 1.0).all())
                image = image[..., :3] * alpha + alpha_color.view(1, 1, 3) * (1.0 - alpha)
            rings.append(border_pixels(image[..., :3]))
        pixels = torch.cat(rings)
        colors[scene] = pixels.median(dim=0).values
        uniform[scene] = ((pixels - colors[scene]).abs().amax(dim=-1) <= BORDER_TOLERANCE).float().mean()
    return SceneBorders(colors, uniform, opaque)


def check_color(color: Sequence[float], flag: str) -> Tuple[float, float, float]:
    """An RGB colour on the [0, 1] scale, or a clear error naming `flag`."""
    values = tuple(float(c) for c in color)
    if len(values) != 3 or not all(0.0 <= c <= 1.0 for c in values):
        raise InputError(f"{flag} {' '.join(f'{c:g}' for c in values)}: give three values (R G B) in [0, 1]")
    return values  # type: ignore[return-value]


def scene_colors(
    mode: BackgroundMode, color: Sequence[float], borders: Optional[SceneBorders], num_scenes: int
) -> Float[Tensor, "S 3"]:
    """Each scene's background colour under `mode`: white, black, `color`, or the scene's border colour (`border`;
    `learned`, which starts from it; `random`, which evaluates and renders over it). Without borders (a model built
    without its data) these modes use white."""
    if mode in ("border", "learned", "random") and borders is not None:
        return borders.colors.clone()
    fixed = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "color": tuple(color)}.get(mode, (1.0, 1.0, 1.0))
    return torch.tensor(fixed, dtype=torch.float32).expand(num_scenes, 3).clone()


def random_palette(count: int) -> Float[Tensor, "P 3"]:
    """The `count` colours of background 'random', uniform in [0, 1]^3, drawn from `PALETTE_SEED`.

    Examples:
        >>> palette = random_palette(4)
        >>> palette.shape, bool((palette >= 0).all() and (palette <= 1).all()), bool((palette == random_palette(4)).all())
        (torch.Size([4, 3]), True, True)
    """
    return torch.rand(count, 3, generator=torch.Generator().manual_seed(PALETTE_SEED))


def check_random_colors(count: int) -> None:
    """Refuses a palette of fewer than one colour for background 'random'."""
    if count < 1:
        raise InputError(f"--pipeline.model.random-colors {count}: give at least one colour")


def disagreements(
    mode: BackgroundMode, colors: Float[Tensor, "S 3"], borders: SceneBorders, scene_names: List[str]
) -> List[str]:
    """One line per kind of mismatch between the views' borders and the background setting, naming the scenes (at
    most five, then a count): opaque views whose borders are another colour than a fixed background, and views whose
    borders are not one colour (unless the views have masks)."""

    def named(mask: Tensor) -> str:
        names = [scene_names[i] for i in mask.nonzero().view(-1).tolist()]
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    lines = []
    if mode == "random" and borders.opaque.any():
        lines.append(
            f"{named(borders.opaque)}: the views have no alpha, so background random cannot put colours behind the "
            "object; these scenes use their border colour"
        )
    if mode in ("white", "black", "color"):
        off = borders.opaque & ((borders.colors - colors).abs().amax(dim=-1) > BORDER_TOLERANCE)
        if off.any():
            first = int(off.nonzero()[0])
            seen = " ".join(f"{c:.2f}" for c in borders.colors[first].tolist())
            wanted = " ".join(f"{c:.2f}" for c in colors[first].tolist())
            lines.append(
                f"{named(off)}: the views have no alpha and their borders are {seen} (RGB), not the background "
                f"{wanted} ({mode}): the model would paint the difference into the scene as fog. Use "
                "--pipeline.model.background border (each scene's border colour) or learned, or give the colour with "
                "--pipeline.model.background color --pipeline.model.background-color R G B"
            )
    patchy = borders.opaque & (borders.uniform < UNIFORM_SHARE)  # never keyed: keying needs a one-colour border
    if patchy.any() and not borders.masked:
        lines.append(
            f"{named(patchy)}: the borders of the views are not one colour (a cluttered background): a background "
            "colour cannot stand for them; give masks (mask_path in transforms.json) or views with alpha"
        )
    return lines


class SceneBackgrounds(nn.Module):
    """Each scene's background as the renderer needs it: a normalised latent (S, C), the autoencoder's encoding of
    the scene's colour, or (`learned`) a per-scene latent that training moves, starting from that encoding; and for
    background 'random', the encodings of the palette's colours, that training rays may be composited over instead.

    Args:
        colors: each scene's background colour.
        latent_channels: C.
        learned: whether the latents are parameters.
        palette: the colours of background 'random' (P, 3); None or empty: none.
    """

    def __init__(
        self,
        colors: Float[Tensor, "S 3"],
        latent_channels: int,
        learned: bool,
        palette: Optional[Float[Tensor, "P 3"]] = None,
    ):
        super().__init__()
        palette = torch.zeros(0, 3) if palette is None else palette
        self.register_buffer("colors", colors.float().clone(), persistent=False)
        self.register_buffer("encoded", torch.zeros(len(colors), latent_channels), persistent=False)
        self.register_buffer("palette", palette.float().clone(), persistent=False)
        self.register_buffer("palette_encoded", torch.zeros(len(palette), latent_channels), persistent=False)
        self.learned = nn.Parameter(torch.zeros(len(colors), latent_channels)) if learned else None

    @torch.no_grad()
    def refresh(self, autoencoder: nn.Module, initialise: bool = False) -> None:
        """Encodes the colours with `autoencoder` (after it has changed); `initialise` also resets learned latents."""
        if len(self.colors) == 0:
            return
        self.encoded.copy_(autoencoder.color_latents(self.colors).to(self.encoded))
        if len(self.palette):
            self.palette_encoded.copy_(autoencoder.color_latents(self.palette).to(self.palette_encoded))
        if initialise and self.learned is not None:
            self.learned.copy_(self.encoded)

    def latents(self) -> Float[Tensor, "S C"]:
        """The background latent of every scene."""
        return self.learned if self.learned is not None else self.encoded

    def of_rays(
        self, scenes: Tensor, choice: Optional[Tensor] = None, color: Optional[Float[Tensor, "n 3"]] = None
    ) -> Float[Tensor, "n C"]:
        """The background latent of each ray: its scene's; where `choice` (n,) is not negative, that palette colour's
        encoding; or with `color`, each ray's own colour (the identity autoencoder's latent is the colour)."""
        if color is not None:
            return color.view(-1, 3).to(scenes.device)
        latents = self.latents()[scenes]
        if choice is None or not len(self.palette):
            return latents
        choice = choice.view(-1).to(scenes.device)
        return torch.where((choice >= 0).unsqueeze(-1), self.palette_encoded[choice.clamp(min=0)], latents)
