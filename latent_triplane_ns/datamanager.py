"""DataManager that encodes every image once, caches the latents on disk, and serves latent-pixel rays."""

from __future__ import annotations

import hashlib
import json
import random
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.utils.dataloaders import RandIndicesEvalDataloader
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from latent_triplane_ns.atomic import atomic_file, write_json
from latent_triplane_ns.autoencoder import LatentAutoencoder
from latent_triplane_ns.backgrounds import UNIFORM_SHARE, key_alpha, read_borders
from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.images import ImageDataset, check_images
from latent_triplane_ns.masks import latent_mask, read_mask
from latent_triplane_ns.scene_batches import SceneSchedule, ray_shares

CACHE_DIRNAME = ".ltn_latents"
"""Folder, inside the dataset folder, holding the cached latents."""


@dataclass
class LatentDataManagerConfig(VanillaDataManagerConfig):
    """Encodes every image once with the autoencoder and serves random latent-pixel rays across all scenes.

    The pixel sampler and image cache of the parent are not used: images are read from disk when encoded, and
    batches are drawn directly from the latents.
    """

    _target: Type = field(default_factory=lambda: LatentDataManager)
    dataparser: AnnotatedDataParserUnion = field(default_factory=SceneCollectionDataParserConfig)
    """The collection: by default a folder of scene folders (or one scene), given with `ns-train <method> --data`."""
    train_num_rays_per_batch: int = 4096
    """Latent pixels (rays) per training step, shared evenly by the step's scenes (see scenes_per_batch)."""
    scenes_per_batch: int = 16
    """Scenes whose rays make up a training step, drawn without repeats from a shuffled order of the collection's
    scenes, so every scene is visited once per epoch of ceil(S / scenes_per_batch) steps; each gets an equal share
    of the rays, uniform over its images and pixels. A step's cost then stays flat as the collection grows.
    0: rays uniform over every image of every scene (a step then touches up to one scene per ray)."""
    eval_num_rays_per_batch: int = 4096
    """Latent pixels per evaluation-loss step."""
    seed: int = 42
    """Seed of the batch sampling."""
    encode_batch_size: int = 16
    """Images encoded per autoencoder call when building the latent cache."""
    cache_latents_on_disk: bool = True
    """Keep the latents in a cache next to the data, keyed by autoencoder weights, normalisation and images."""
    crop_to_autoencoder: bool = True
    """Crop images at the top-left to a multiple of the autoencoder's downsampling; False: such images are an error."""
    key_border: bool = False
    """Training views without alpha (photographs on a plain backdrop) get one by keying out their scene's border
    colour (`backgrounds.key_alpha`), so that background 'random' can put colours behind the object; held-out views
    are evaluated as they are. Scenes whose borders are not one colour are not keyed. It punches holes where the
    object has the backdrop's colour and touches it."""


def check_one_size(dataset: InputDataset) -> None:
    """Raises, naming the first image of another size, unless every camera of a split has one size (the latent images
    of a split are stacked into one tensor)."""
    cameras = dataset.cameras
    odd = ((cameras.height != cameras.height[0]) | (cameras.width != cameras.width[0])).view(-1).nonzero()
    if len(odd):
        i = int(odd[0])
        raise InputError(
            f"{dataset.image_filenames[i]}: all images of a collection must share one size "
            f"({int(cameras.height[0])}x{int(cameras.width[0])} for {dataset.image_filenames[0]}, "
            f"{int(cameras.height[i])}x{int(cameras.width[i])} here)"
        )


class LatentDataManager(VanillaDataManager[ImageDataset]):
    """Holds the latent images of the collection and serves rays at latent resolution.

    `image` stays RGB everywhere (viewer thumbnails and `ns-render dataset` read it from the dataset); latents are
    added as `latent`. Images are cropped at the top-left to a multiple of the autoencoder's downsampling factor;
    the principal point is unchanged by such a crop, only the camera's width and height shrink.
    """

    config: LatentDataManagerConfig

    def __init__(self, config: LatentDataManagerConfig, *args, **kwargs):
        self._autoencoder: List[LatentAutoencoder] = []  # unregistered: the model owns and saves it
        super().__init__(config, *args, **kwargs)
        self._rng = torch.Generator().manual_seed(config.seed)
        if config.scenes_per_batch < 0:
            raise InputError(f"scenes_per_batch={config.scenes_per_batch}: give 0 (every scene) or a positive count")
        for dataset in (self.train_dataset, self.eval_dataset):
            check_one_size(dataset)
        # every image decodes (a truncated or damaged file is refused by name now, not at a later step)
        check_images([*self.train_dataset.image_filenames, *self.eval_dataset.image_filenames])
        self.eval_unseen_cameras = list(range(len(self.eval_dataset)))
        for dataset in (self.train_dataset, self.eval_dataset):
            if dataset.cameras.metadata is None or "scene_index" not in dataset.cameras.metadata:
                dataset.cameras.metadata = {"scene_index": torch.zeros(len(dataset), 1, dtype=torch.long)}
        # what the borders of each scene's views show, for the model's background (it is built from this metadata)
        borders = read_borders(
            self.train_dataset, self.train_dataset.cameras.metadata["scene_index"].view(-1), self._alpha_color()
        )
        borders.masked = self.has_masks(self.train_dataset)
        if config.key_border:  # views without alpha on a backdrop of one colour get an alpha: no longer opaque
            borders.keyed = borders.opaque & (borders.uniform >= UNIFORM_SHARE)
            borders.opaque = borders.opaque & ~borders.keyed
        self.train_dataset.metadata["scene_borders"] = borders
        self._scene_colors: Optional[Tensor] = None
        """Each scene's background colour (the model's), that views with alpha are composited over."""
        self._random = False
        """Background 'random': training rays of scenes with alpha get random background colours."""
        self._palette = torch.zeros(0, 3)
        """Background 'random' with an autoencoder: the colours that training views are also composited over and
        encoded (the identity autoencoder draws any colour instead)."""

    def _alpha_color(self) -> Tensor:
        alpha_color = self.train_dataset._dataparser_outputs.alpha_color
        return torch.ones(3) if alpha_color is None else alpha_color.float().cpu()

    def set_backgrounds(
        self, colors: Float[Tensor, "S 3"], random: bool = False, palette: Optional[Float[Tensor, "P 3"]] = None
    ) -> None:
        """Gives each scene's background colour: views with alpha are composited over it from now on. With `random`
        (background 'random'), every training ray of a scene whose views have alpha gets a random background colour,
        the same behind its target and its render: with a `palette`, the training views are also encoded over each
        of its colours and a ray takes its target from one of these encodings or the scene's colour
        (`background_choice` in its metadata: the palette index, -1 for the scene's colour); without one (the
        identity autoencoder) a ray's colour is uniform in [0, 1]^3 (`background_color` in its metadata), its target
        the pixel composited over it."""
        self._scene_colors = colors.detach().float().cpu()
        self._random = random
        self._palette = torch.zeros(0, 3) if palette is None else palette.detach().float().cpu()
        self.invalidate_latents()

    def setup_train(self) -> None:
        """Nothing to prepare: latents are encoded when first needed."""

    def setup_eval(self) -> None:
        """Only the camera dataloader that `ns-render spiral` and the viewer read; images load on demand."""
        self.eval_dataloader = RandIndicesEvalDataloader(input_dataset=self.eval_dataset, device=self.device)

    def set_autoencoder(self, autoencoder: LatentAutoencoder) -> None:
        """Gives the autoencoder to encode with and crops the cameras to its downsampling factor."""
        self._autoencoder = [autoencoder]
        f = autoencoder.downsample_factor
        for dataset in (self.train_dataset, self.eval_dataset):
            odd = ((dataset.cameras.height % f != 0) | (dataset.cameras.width % f != 0)).view(-1).nonzero()
            if not self.config.crop_to_autoencoder and len(odd):
                i = int(odd[0])
                raise InputError(
                    f"{dataset.image_filenames[i]}: image size {int(dataset.cameras.height[i])}x"
                    f"{int(dataset.cameras.width[i])} is not a multiple of the autoencoder's downsampling factor {f}"
                )
            dataset.cameras.height = dataset.cameras.height - dataset.cameras.height % f
            dataset.cameras.width = dataset.cameras.width - dataset.cameras.width % f
            if int(dataset.cameras.height.min()) < f or int(dataset.cameras.width.min()) < f:
                raise InputError(f"images of {self.get_datapath()} are smaller than the autoencoder's factor {f}")

    @property
    def autoencoder(self) -> LatentAutoencoder:
        if not self._autoencoder:
            raise RuntimeError("LatentDataManager.set_autoencoder must be called before latents are needed")
        return self._autoencoder[0]

    def load_rgba(
        self, dataset: InputDataset, index: int
    ) -> Tuple[Float[Tensor, "H W 3"], Optional[Float[Tensor, "H W 1"]]]:
        """A view in [0, 1], cropped to its camera's size: its RGB times its alpha, and its alpha (None for an image
        without an alpha channel, whose RGB is returned as it is, unless `key_border` keys a training view's alpha)."""
        image = torch.from_numpy(dataset.get_numpy_image(index).astype(np.float32) / 255.0)
        height, width = int(dataset.cameras.height[index]), int(dataset.cameras.width[index])
        if image.shape[0] < height or image.shape[1] < width:
            raise InputError(
                f"{dataset.image_filenames[index]}: image is {image.shape[0]}x{image.shape[1]}, "
                f"its camera says {height}x{width}"
            )
        image = image[:height, :width]
        if image.shape[-1] != 4:
            borders = dataset.metadata.get("scene_borders") if dataset is self.train_dataset else None
            scene = int(dataset.cameras.metadata["scene_index"][index])
            if borders is None or borders.keyed is None or not borders.keyed[scene]:
                return image[..., :3], None
            image = torch.cat([image[..., :3], key_alpha(image[..., :3], borders.colors[scene])], dim=-1)
        alpha = image[..., 3:]
        return image[..., :3] * alpha, alpha

    def load_image(
        self, dataset: InputDataset, index: int, color: Optional[Float[Tensor, " 3"]] = None
    ) -> Float[Tensor, "H W 3"]:
        """RGB image in [0, 1], cropped to its camera's size; an image with alpha is composited over `color`, by
        default its scene's background colour (`set_backgrounds`; the dataparser's alpha colour before)."""
        premultiplied, alpha = self.load_rgba(dataset, index)
        if alpha is None:
            return premultiplied
        if color is None:
            scene = int(dataset.cameras.metadata["scene_index"][index])
            color = self._alpha_color() if self._scene_colors is None else self._scene_colors[scene]
        return premultiplied + color.view(1, 1, 3) * (1.0 - alpha)

    @staticmethod
    def has_masks(dataset: InputDataset) -> bool:
        """Whether the dataset's views have masks (nerfstudio's `mask_path`)."""
        return dataset._dataparser_outputs.mask_filenames is not None

    def load_mask(self, dataset: InputDataset, index: int) -> Float[Tensor, "H W 1"]:
        """The mask of a view (1 where the pixel carries a loss, else 0), cropped to its camera's size."""
        height, width = int(dataset.cameras.height[index]), int(dataset.cameras.width[index])
        return read_mask(dataset._dataparser_outputs.mask_filenames[index])[:height, :width]

    def _latent_masks(self, dataset: InputDataset) -> Float[Tensor, "N h w 1"]:
        """Every view's mask on the latent grid (`masks.latent_mask`)."""
        masks = torch.stack([self.load_mask(dataset, i) for i in range(len(dataset))])
        return latent_mask(masks, self.autoencoder.downsample_factor)

    def _cache_key(self, dataset: InputDataset, color: Optional[Tensor] = None) -> str:
        digest = hashlib.sha256(self.autoencoder.fingerprint().encode())
        digest.update(str(dataset._dataparser_outputs.alpha_color).encode())
        if self.config.key_border and dataset is self.train_dataset:
            digest.update(b"key_border")
        if color is not None:  # views with alpha are composited over this colour
            digest.update(b"color" + color.numpy().tobytes())
        elif self._scene_colors is not None:  # or over these
            digest.update(self._scene_colors.numpy().tobytes())
        for filename, h, w in zip(dataset.image_filenames, dataset.cameras.height, dataset.cameras.width, strict=True):
            digest.update(f"{h.item()}x{w.item()}".encode())
            digest.update(Path(filename).read_bytes())
        return digest.hexdigest()[:20]

    def _encode(self, dataset: InputDataset, split: str) -> Dict[str, Tensor]:
        """Latents (N, h, w, C) and scene indices (N,) of a dataset, from the disk cache when it matches, and where
        the views have masks, their `mask` (N, h, w, 1) on the latent grid."""
        cached = self._encode_latents(dataset, split)
        if self.has_masks(dataset):
            cached["mask"] = self._latent_masks(dataset).to(self.device)
        return cached

    def _encode_latents(self, dataset: InputDataset, split: str, color: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Latents and scene indices of a dataset, views with alpha composited over `color` (default: each scene's
        background colour)."""
        scene_index = dataset.cameras.metadata["scene_index"].view(-1).long()
        ae = self.autoencoder
        use_disk = self.config.cache_latents_on_disk and ae.vae is not None
        cache_file = None
        if use_disk:
            key = self._cache_key(dataset, color)
            cache_file = Path(self.get_datapath()) / CACHE_DIRNAME / f"{split}-{key}.safetensors"
            latents = read_cached_latents(cache_file, (len(dataset), *self.latent_shape(dataset)))
            if latents is not None:
                CONSOLE.log(f"Latent cache hit: {cache_file}")
                return {"latents": latents.to(self.device), "scene_index": scene_index.to(self.device)}
        chunks = []
        size = self.config.encode_batch_size
        device = ae.norm_scale.device
        with Progress(
            TextColumn(f"[bold green]Encoding {split} images"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=CONSOLE,
            transient=True,
        ) as progress:
            task = progress.add_task("encode", total=len(dataset))
            for start in range(0, len(dataset), size):
                images = torch.stack(
                    [self.load_image(dataset, i, color) for i in range(start, min(start + size, len(dataset)))]
                )
                with torch.no_grad():
                    chunks.append(ae.encode(images.permute(0, 3, 1, 2).to(device)).permute(0, 2, 3, 1).cpu())
                progress.advance(task, images.shape[0])
        latents = torch.cat(chunks).contiguous()
        if cache_file is not None:
            try:
                write_cached_latents(cache_file, latents, {"split": split, "data": str(self.get_datapath())})
            except OSError as err:
                CONSOLE.log(f"[yellow]Could not write the latent cache {cache_file} ({err}); continuing without it")
        return {"latents": latents.to(self.device), "scene_index": scene_index.to(self.device)}

    @cached_property
    def cached_train(self) -> Dict[str, Tensor]:  # type: ignore[override]
        """`_encode` of the training views; with a palette (background 'random') also `palette_latents` (P, N, h, w,
        C), the views composited over each palette colour."""
        cached = self._encode(self.train_dataset, "train")
        if not self._random:
            return cached
        # the scenes whose views have transparent pixels: only their rays get random colours
        cached["random"] = (~self.train_dataset.metadata["scene_borders"].opaque).to(self.device)
        if len(self._palette):
            cached["palette_latents"] = torch.stack(
                [self._encode_latents(self.train_dataset, "train", color)["latents"] for color in self._palette]
            )
        else:  # the identity autoencoder: the views over black, and their alpha, read in one pass
            views = [self.load_rgba(self.train_dataset, i) for i in range(len(self.train_dataset))]
            cached["premultiplied"] = torch.stack([rgb for rgb, _ in views]).to(self.device)
            alphas = [torch.ones_like(rgb[..., :1]) if alpha is None else alpha for rgb, alpha in views]
            cached["alpha"] = torch.stack(alphas).to(self.device)
        return cached

    @cached_property
    def cached_eval(self) -> Dict[str, Tensor]:  # type: ignore[override]
        return self._encode(self.eval_dataset, "eval")

    @cached_property
    def latent_train_cameras(self) -> Cameras:
        return _latent_cameras(self.train_dataset.cameras, self.autoencoder.downsample_factor).to(self.device)

    @cached_property
    def latent_eval_cameras(self) -> Cameras:
        return _latent_cameras(self.eval_dataset.cameras, self.autoencoder.downsample_factor).to(self.device)

    def latent_shape(self, dataset: InputDataset) -> Tuple[int, int, int]:
        """(h, w, C) of every latent image of a dataset (its images share one size)."""
        f = self.autoencoder.downsample_factor
        return int(dataset.cameras.height[0]) // f, int(dataset.cameras.width[0]) // f, self.autoencoder.latent_channels

    def get_train_rays_per_batch(self) -> int:
        return self.config.train_num_rays_per_batch

    def _random_rays(self, cache: Dict[str, Tensor], cameras: Cameras, count: int) -> Tuple[RayBundle, Dict]:
        latents = cache["latents"]
        n, h, w, _ = latents.shape
        flat = torch.randint(0, n * h * w, (count,), generator=self._rng).to(self.device)
        image, y, x = flat // (h * w), (flat % (h * w)) // w, flat % w
        return self._with_random_backgrounds(cache, *_pixel_rays(latents, cameras, image, y, x, cache.get("mask")))

    def _with_random_backgrounds(
        self, cache: Dict[str, Tensor], ray_bundle: RayBundle, batch: Dict
    ) -> Tuple[RayBundle, Dict]:
        """Background 'random' (`set_backgrounds`): each training ray of an image with alpha gets a random colour and
        the target composited over it; rays of images without alpha keep their scene's colour."""
        if "random" not in cache:
            return ray_bundle, batch
        count = len(batch["latent"])
        image, y, x = batch["indices"].unbind(-1)
        scenes = cache["scene_index"][image]
        drawn = cache["random"][scenes]  # (n,) whether the ray's scene has views with alpha
        if "palette_latents" in cache:
            palette_latents = cache["palette_latents"]
            choice = torch.randint(0, len(palette_latents) + 1, (count,), generator=self._rng).to(self.device) - 1
            choice = torch.where(drawn, choice, torch.full_like(choice, -1))
            alternative = palette_latents[choice.clamp(min=0), image, y, x]
            batch["latent"] = torch.where((choice >= 0).unsqueeze(-1), alternative, batch["latent"])
            ray_bundle.metadata = {**(ray_bundle.metadata or {}), "background_choice": choice.unsqueeze(-1)}
            return ray_bundle, batch
        colors = torch.rand(count, 3, generator=self._rng).to(self.device)
        colors = torch.where(drawn.unsqueeze(-1), colors, self._scene_colors.to(self.device)[scenes])
        alpha = cache["alpha"][image, y, x]
        batch["latent"] = cache["premultiplied"][image, y, x] + (1.0 - alpha) * colors
        ray_bundle.metadata = {**(ray_bundle.metadata or {}), "background_color": colors}
        return ray_bundle, batch

    @cached_property
    def _train_images_by_scene(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """(scenes, first, count, order): the scenes with training images; for each, where its images start in
        `order` and how many it has; `order` lists the training images grouped by scene."""
        scene_index = self.train_dataset.cameras.metadata["scene_index"].view(-1).long()
        order = torch.argsort(scene_index, stable=True)
        scenes, count = torch.unique(scene_index, return_counts=True)
        first = torch.cumsum(count, 0) - count
        return scenes, first, count, order

    @cached_property
    def scene_schedule(self) -> SceneSchedule:
        """The scenes of each training step (scene-batched sampling), as positions in `_train_images_by_scene`."""
        return SceneSchedule(len(self._train_images_by_scene[0]), self.config.scenes_per_batch, self._rng)

    def _scene_batched_rays(self, count: int) -> Tuple[RayBundle, Dict]:
        """`count` latent pixels of the next step's scenes, an equal share each (the first few get one more when
        `count` does not divide evenly), uniform over each scene's images and pixels."""
        latents = self.cached_train["latents"]
        _, h, w, _ = latents.shape
        _, first, num_images, order = self._train_images_by_scene
        chosen = self.scene_schedule.next()
        ray_scene = chosen.repeat_interleave(ray_shares(count, len(chosen)))
        local = (torch.rand(count, generator=self._rng) * num_images[ray_scene]).long()
        image = order[first[ray_scene] + local.clamp(max=num_images[ray_scene] - 1)].to(self.device)
        pixel = torch.randint(0, h * w, (count,), generator=self._rng).to(self.device)
        return self._with_random_backgrounds(
            self.cached_train,
            *_pixel_rays(
                latents, self.latent_train_cameras, image, pixel // w, pixel % w, self.cached_train.get("mask")
            ),
        )

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:  # type: ignore[override]
        """Random latent pixels of the step's scenes (all scenes when scenes_per_batch is 0)."""
        self.train_count += 1
        if self.config.scenes_per_batch > 0:
            return self._scene_batched_rays(self.config.train_num_rays_per_batch)
        return self._random_rays(self.cached_train, self.latent_train_cameras, self.config.train_num_rays_per_batch)

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:  # type: ignore[override]
        """Random latent pixels of the held-out images, for the evaluation loss."""
        self.eval_count += 1
        return self._random_rays(self.cached_eval, self.latent_eval_cameras, self.config.eval_num_rays_per_batch)

    def invalidate_latents(self) -> None:
        """Forgets the in-memory latents (the autoencoder changed); they are re-encoded when next needed."""
        for name in ("cached_train", "cached_eval"):
            self.__dict__.pop(name, None)

    def random_train_images(self, count: int) -> Float[Tensor, "count H W 3"]:
        """`count` random training images of any scenes, for autoencoder training."""
        indices = torch.randint(0, len(self.train_dataset), (count,), generator=self._rng)
        return torch.stack([self.load_image(self.train_dataset, int(i)) for i in indices]).to(self.device)

    def next_train_views(self, count: int, patch: Optional[int] = None) -> Tuple[RayBundle, Dict]:
        """Every latent pixel of `count` random training views, or of a random `patch` x `patch` window of each, plus
        the matching RGB pixels, for losses on whole views.

        Returns:
            rays of shape (count, p, q), and a batch with `image` (count, p*f, q*f, 3), `image_idx` (count,) and
            `latent_yx`, the latent rows and columns of the rays (two (count, p, q) index tensors); (p, q) is the
            latent's (h, w), or the window's size when `patch` is smaller.
        """
        indices = torch.randint(0, len(self.train_dataset), (count,), generator=self._rng)
        cameras = self.latent_train_cameras
        h, w = int(cameras.height[0]), int(cameras.width[0])
        p, q = (h, w) if patch is None else (min(patch, h), min(patch, w))

        def corners(side: int, size: int) -> Tensor:  # the rng draws only for a window smaller than the view
            if size == side:
                return torch.zeros(count, dtype=torch.long)
            return torch.randint(0, side - size + 1, (count,), generator=self._rng)

        top, left = corners(h, p), corners(w, q)
        y = (top.view(-1, 1, 1) + torch.arange(p).view(1, -1, 1)).expand(count, p, q).to(self.device)
        x = (left.view(-1, 1, 1) + torch.arange(q).view(1, 1, -1)).expand(count, p, q).to(self.device)
        coords = torch.stack([y, x], dim=-1).float() + 0.5
        camera_indices = indices.to(self.device).view(count, 1, 1, 1).expand(count, p, q, 1)
        ray_bundle = cameras.generate_rays(camera_indices=camera_indices, coords=coords)
        f = self.autoencoder.downsample_factor
        images = torch.stack(
            [
                self.load_image(self.train_dataset, int(i))[row * f : (row + p) * f, col * f : (col + q) * f]
                for i, row, col in zip(indices, top, left, strict=True)
            ]
        ).to(self.device)
        batch = {"image": images, "image_idx": indices.to(self.device), "latent_yx": (y, x)}
        if self.has_masks(self.train_dataset):
            batch["image_mask"] = torch.stack(
                [
                    self.load_mask(self.train_dataset, int(i))[row * f : (row + p) * f, col * f : (col + q) * f]
                    for i, row, col in zip(indices, top, left, strict=True)
                ]
            ).to(self.device)
        return ray_bundle, batch

    def eval_view(self, index: int) -> Tuple[Cameras, Dict]:
        """Full-resolution camera of held-out image `index` and its batch: RGB `image`, `scene_index`, no latent."""
        camera = self.eval_dataset.cameras[index : index + 1].to(self.device)
        batch = {
            "image": self.load_image(self.eval_dataset, index).to(self.device),
            "scene_index": int(self.eval_dataset.cameras.metadata["scene_index"].view(-1)[index]),
            "image_idx": index,
        }
        return camera, batch

    def eval_item(self, index: int) -> Tuple[Cameras, Dict]:
        """`eval_view` and the encoded `latent` (h, w, C) of the image."""
        camera, batch = self.eval_view(index)
        return camera, {**batch, "latent": self.cached_eval["latents"][index]}

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        index = self.eval_unseen_cameras.pop(random.randint(0, len(self.eval_unseen_cameras) - 1))
        if not self.eval_unseen_cameras:
            self.eval_unseen_cameras = list(range(len(self.eval_dataset)))
        return self.eval_item(index)

    @property
    def fixed_indices_eval_dataloader(self) -> EvalImages:  # type: ignore[override]
        """Every held-out image in order, loaded only when iterated (the viewer inspects this attribute)."""
        return EvalImages(self)


class EvalImages:
    """Lazy sequence of (camera, batch) over the held-out images."""

    def __init__(self, datamanager: LatentDataManager):
        self.datamanager = datamanager

    def __len__(self) -> int:
        return len(self.datamanager.eval_dataset)

    def __getitem__(self, index: int) -> Tuple[Cameras, Dict]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.datamanager.eval_item(index)

    def __iter__(self) -> Iterator[Tuple[Cameras, Dict]]:
        return (self[i] for i in range(len(self)))


def _pixel_rays(
    latents: Float[Tensor, "n h w C"],
    cameras: Cameras,
    image: Tensor,
    y: Tensor,
    x: Tensor,
    masks: Optional[Float[Tensor, "n h w 1"]] = None,
) -> Tuple[RayBundle, Dict]:
    """The rays through the centres of latent pixels (image, y, x), and their batch: target `latent`, `indices`, and
    with `masks`, each pixel's loss weight `mask`."""
    coords = torch.stack([y, x], dim=-1).float() + 0.5
    ray_bundle = cameras.generate_rays(camera_indices=image.unsqueeze(-1), coords=coords)
    batch = {"latent": latents[image, y, x], "indices": torch.stack([image, y, x], dim=-1)}
    if masks is not None:
        batch["mask"] = masks[image, y, x]
    return ray_bundle, batch


def _latent_cameras(cameras: Cameras, factor: int) -> Cameras:
    """Cameras at latent resolution: intrinsics divided exactly by the factor, so latent pixel j covers RGB
    pixels f*j .. f*j+f-1 under nerfstudio's pixel-centre (+0.5) convention."""
    latent = deepcopy(cameras)
    latent.rescale_output_resolution(1.0 / factor)
    return latent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_cached_latents(cache_file: Path, latents: Tensor, info: Dict) -> None:
    """Writes a latent cache entry: the latents, then a sidecar JSON with their shape and the file's SHA-256 (each
    written atomically; an entry whose sidecar does not vouch for its file is never read)."""
    atomic_file(cache_file, lambda tmp: save_file({"latents": latents}, str(tmp)))
    sidecar = {**info, "shape": list(latents.shape), "sha256": _sha256(cache_file)}
    write_json(cache_file.with_suffix(".json"), sidecar)


def read_cached_latents(cache_file: Path, shape: Tuple[int, ...]) -> Optional[Tensor]:
    """The latents of a cache entry when it is whole and of the expected shape; None when there is none. A damaged
    entry (truncated, zero-filled, edited, or without its sidecar) is reported, removed and treated as a miss, so
    the latents are encoded again."""
    if not cache_file.is_file():
        return None
    sidecar = cache_file.with_suffix(".json")
    problem = None
    try:
        info = json.loads(sidecar.read_text())
        if info.get("sha256") != _sha256(cache_file):
            problem = "its contents do not match the checksum in its sidecar"
        elif tuple(info.get("shape", ())) != tuple(shape):
            problem = f"it holds latents of shape {tuple(info.get('shape', ()))}, expected {tuple(shape)}"
    except FileNotFoundError:
        problem = f"its sidecar {sidecar.name} is missing"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        problem = f"its sidecar {sidecar.name} is not valid JSON"
    if problem is None:
        try:
            latents = load_file(str(cache_file))["latents"]
        except (SafetensorError, OSError, KeyError) as err:
            problem = f"it cannot be read ({err})"
        else:
            if tuple(latents.shape) == tuple(shape):
                return latents
            problem = f"it holds latents of shape {tuple(latents.shape)}, expected {tuple(shape)}"
    CONSOLE.log(f"[yellow]Damaged latent cache entry {cache_file}: {problem}; encoding the images again")
    cache_file.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return None
