"""The shared per-scene evaluator: view selection, PSNR by hand, per-scene means."""

from __future__ import annotations

import math

import pytest
import torch

from latent_triplane_ns.evaluation import Evaluation, ViewResult, image_psnr, pick_views, psnr_from_mse


def test_pick_views_takes_the_first_views_of_the_first_scenes():
    assert pick_views([0, 0, 0, 1, 1, 2, 2], views_per_scene=2, num_scenes=2) == [0, 1, 3, 4]
    assert pick_views([1, 0, 1, 0], views_per_scene=1, num_scenes=5) == [1, 0]
    assert pick_views([1, 0, 1, 0], views_per_scene=None) == [1, 3, 0, 2]


def test_psnr_by_hand():
    # MSE 0.01 on [0, 1]: 10 log10(1 / 0.01) = 20 dB; on [-1, 1] (range 2): 10 log10(4 / 0.01) = 26.0206 dB
    assert float(psnr_from_mse(torch.tensor(0.01))) == pytest.approx(20.0)
    assert float(psnr_from_mse(torch.tensor(0.01), data_range=2.0)) == pytest.approx(26.0206, abs=1e-4)
    target = torch.zeros(4, 4, 3)
    pred = target.clone()
    pred[:2] = 0.2  # half the pixels off by 0.2: MSE 0.02, PSNR 16.9897 dB
    assert image_psnr(pred, target) == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-4)


def test_every_scene_weighs_the_same_in_the_means():
    def view(index, scene, psnr):
        image = torch.zeros(1, 1, 3)
        return ViewResult(index, scene, {"psnr": psnr, "ssim": psnr / 100}, image, image)

    # scene 0 has three views (20, 22, 24 dB: mean 22), scene 1 one view (30 dB)
    evaluation = Evaluation([view(0, 0, 20.0), view(1, 0, 22.0), view(2, 0, 24.0), view(3, 1, 30.0)], ["a", "b"])
    assert evaluation.per_scene() == {
        "a": {"psnr": pytest.approx(22.0), "ssim": pytest.approx(0.22)},
        "b": {"psnr": 30.0, "ssim": 0.30},
    }
    assert evaluation.means()["psnr"] == pytest.approx(26.0)  # (22 + 30) / 2, not the per-view mean 24
