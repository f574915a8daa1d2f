"""Per-scene evaluation of held-out views: one evaluator for ns-eval, the benchmark and the contact sheet."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from jaxtyping import Float
from torch import Tensor


def psnr_from_mse(mse: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of a mean squared error between images whose values span `data_range`."""
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-10))


def image_psnr(pred: Float[Tensor, "*batch H W 3"], target: Float[Tensor, "*batch H W 3"]) -> float:
    """PSNR in dB of an image (or a batch of them, pooled) in [0, 1] against its target."""
    return float(psnr_from_mse(torch.mean((pred.float() - target.float()) ** 2)))


def pick_views(
    scene_of_image: Sequence[int], views_per_scene: Optional[int], num_scenes: Optional[int] = None
) -> List[int]:
    """Indices of the first `views_per_scene` images (all when None) of each of the first `num_scenes` scenes (all
    when None), in scene order, and in image order within a scene.

    Args:
        scene_of_image: scene index of every image, in image order.
        views_per_scene: how many views of each scene.
        num_scenes: how many scenes, in scene-index order.
    """
    by_scene: Dict[int, List[int]] = defaultdict(list)
    for index, scene in enumerate(scene_of_image):
        by_scene[int(scene)].append(index)
    scenes = sorted(by_scene)[:num_scenes]
    return [index for scene in scenes for index in by_scene[scene][:views_per_scene]]


@dataclass
class ViewResult:
    """One evaluated held-out view."""

    index: int
    """Index of the view in the held-out dataset."""
    scene: int
    """Its scene's index."""
    metrics: Dict[str, float]
    """The model's metrics of the view (psnr, ssim, and with full metrics latent_psnr, ae_psnr, lpips...)."""
    render: Float[Tensor, "H W 3"]
    """The decoded render, cropped to the ground truth."""
    ground_truth: Float[Tensor, "H W 3"]
    """The held-out image."""
    seconds: float = 0.0
    """Wall time of the render."""
    images: Dict[str, Tensor] = field(default_factory=dict)
    """The model's evaluation images (with full metrics)."""


@dataclass
class Evaluation:
    """Metrics of a set of held-out views: per scene, and their means with every scene weighing the same."""

    views: List[ViewResult]
    scene_names: List[str]

    def per_scene(self) -> Dict[str, Dict[str, float]]:
        """Mean of every metric over each scene's views, keyed by scene name."""
        grouped: Dict[int, List[ViewResult]] = defaultdict(list)
        for view in self.views:
            grouped[view.scene].append(view)
        result = {}
        for scene, views in sorted(grouped.items()):
            keys = views[0].metrics.keys()
            result[self.scene_name(scene)] = {k: sum(v.metrics[k] for v in views) / len(views) for k in keys}
        return result

    def means(self) -> Dict[str, float]:
        """Mean over scenes of each scene's mean metric."""
        scenes = list(self.per_scene().values())
        if not scenes:
            return {}
        return {k: sum(s[k] for s in scenes) / len(scenes) for k in scenes[0]}

    def scene_name(self, scene: int) -> str:
        return self.scene_names[scene] if scene < len(self.scene_names) else str(scene)


class SceneEvaluator:
    """Renders held-out views with a model and scores them with the model's own metrics.

    Args:
        model: a `LatentTriplaneModel`.
        datamanager: its `LatentDataManager`.
        indices: held-out views to evaluate (all of them when None).
        full_metrics: the model's every metric (`get_image_metrics_and_images`: latent PSNR, the autoencoder's
            reconstruction PSNR, LPIPS where its weights are local, and the evaluation images); otherwise only
            PSNR and SSIM of the decoded render, from cameras and images loaded once (for frequent evaluations).
    """

    def __init__(self, model, datamanager, indices: Optional[Sequence[int]] = None, full_metrics: bool = True):
        self.model, self.datamanager = model, datamanager
        self.indices = list(range(len(datamanager.eval_dataset))) if indices is None else list(indices)
        self.full_metrics = full_metrics
        self._loaded = [] if full_metrics else [datamanager.eval_view(i) for i in self.indices]

    def _view(self, position: int):
        """(camera, batch without latent) of the evaluated view at `position`: loaded once when preloaded."""
        return self._loaded[position] if self._loaded else self.datamanager.eval_view(self.indices[position])

    def __len__(self) -> int:
        return len(self.indices)

    @torch.no_grad()
    def views(self) -> Iterator[ViewResult]:
        """Evaluates the views one at a time, the model in eval mode meanwhile."""
        model = self.model
        was_training = model.training
        model.eval()
        try:
            for position, index in enumerate(self.indices):
                if self.full_metrics:
                    camera, batch = self.datamanager.eval_item(index)
                else:
                    camera, batch = self._loaded[position]
                start = time.perf_counter()
                outputs = model.get_outputs_for_camera(camera)
                seconds = time.perf_counter() - start
                render, truth = model.cropped_pair(outputs["rgb"], batch["image"])
                images: Dict[str, Tensor] = {}
                if self.full_metrics:
                    metrics, images = model.get_image_metrics_and_images(outputs, batch)
                else:
                    metrics = model.rgb_metrics(render, truth)
                yield ViewResult(index, int(batch["scene_index"]), metrics, render, truth, seconds, images)
        finally:
            model.train(was_training)

    def evaluate(self) -> Evaluation:
        """Every view's metrics."""
        return Evaluation(list(self.views()), list(self.model.scene_names))

    @torch.no_grad()
    def autoencoder_psnr(self) -> Optional[float]:
        """Mean over scenes of the PSNR of D(E(x)) on the views (None for RGB): the ceiling of a latent fit
        unless decoder steps fine-tuned the decoder on renders."""
        ae = self.model.autoencoder
        if ae.vae is None:
            return None
        views = []
        for position, index in enumerate(self.indices):
            _, batch = self._view(position)
            image = batch["image"]
            recon = ae.decode(ae.encode(image.permute(2, 0, 1)[None]))[0].permute(1, 2, 0)
            metrics = {"psnr": image_psnr(recon, image)}
            views.append(ViewResult(index, int(batch["scene_index"]), metrics, recon, image))
        return Evaluation(views, list(self.model.scene_names)).means()["psnr"]
