"""The benchmark's plan: when each run evaluates, and how long every stage is expected to take."""

from __future__ import annotations

import os
from typing import Dict, List

from latent_triplane_ns.benchmark.config import BenchmarkConfig, preset_config


def eval_schedule(budget_seconds: float, first_seconds: float, points: int) -> List[float]:
    """Training times of the curve's evaluations: zero, then `points` log-spaced times ending at the budget."""
    if points < 1 or budget_seconds <= 0:
        return [0.0, max(budget_seconds, 0.0)]
    first = min(first_seconds, budget_seconds)
    if points == 1 or first >= budget_seconds:
        return [0.0, budget_seconds]
    ratio = budget_seconds / first
    return [0.0] + [first * ratio ** (k / (points - 1)) for k in range(points)]


# Rough unit costs behind the wall-time estimate, measured on 2 busy Xeon cores (CPU) and guessed for one GPU.
_UNIT_SECONDS = {
    "cpu": {
        "scene": 1.6,
        "encode": 0.1,
        "decode": 0.4,
        "sample": 4e-6,
        "train_sample": 3e-6,
        "joint_step": 1.7,
        "decoder_step": 0.9,
        "process": 25.0,
    },
    "cuda": {
        "scene": 1.6,
        "encode": 0.002,
        "decode": 0.005,
        "sample": 2e-8,
        "train_sample": 1e-8,
        "joint_step": 0.05,
        "decoder_step": 0.03,
        "process": 30.0,
    },
}
"""Seconds per generated 128 px scene of 60 views (one core), per encoded and per decoded 128 px image, per ray
sample of a rendered view and of a training step, per joint (autoencoder and scenes) step of the basis stage, per
decoder step on whole 128 px views at 4x downsampling, and per training process start (imports, setup)."""


def planned_seconds(config: BenchmarkConfig) -> Dict[str, float]:
    """Expected wall time of every stage: budgets plus setup, encoding, evaluation and rendering (estimates)."""
    unit = _UNIT_SECONDS[config.device]
    pixels = config.image_size**2
    area = pixels / 128**2
    sizes = config.resolved_sizes()
    samples = sizes.num_coarse_samples + sizes.num_importance_samples
    k, n = config.num_new_scenes, config.num_basis_scenes
    scenes = k + (0 if config.basis else n)
    views = config.num_train_views + config.num_test_views
    plan = {"generate": 2.0 + unit["scene"] * scenes * area * views / 60 / max(1, os.cpu_count() or 1)}
    latent_view = unit["sample"] * samples * pixels / 64 + unit["decode"] * area
    if config.autoencoder is None and config.basis is None:
        statistics = unit["encode"] * area * n * config.num_train_views / 4
        plan["autoencoder"] = config.autoencoder_training.max_minutes * 60 + 10 + statistics
    if config.basis is None:
        encode = unit["encode"] * area * n * config.num_train_views
        fit_step = unit["train_sample"] * config.latent_rays_per_batch * samples
        # a decoder window's share of a whole view, at the shipped autoencoder's 4x downsampling
        patch = preset_config(config.basis_method).pipeline.model.decoder_patch_size
        window = 1.0 if patch is None else min(1.0, (4 * patch / config.image_size) ** 2)
        decoder_step = unit["decoder_step"] * area * window
        ray_steps, joint_steps, decoder_steps = config.basis_phases()
        steps = ray_steps * fit_step + joint_steps * unit["joint_step"] * area + decoder_steps * decoder_step
        plan["basis"] = steps + unit["process"] + encode + 2 * n * latent_view

    def evaluated(scenes: int) -> int:  # views rendered for the curve, the final evaluation and the renders
        return (
            (config.curve_points + 1) * scenes * config.eval_views_per_scene
            + scenes * config.num_test_views
            + (config.render_views + 1)
        )

    baseline = evaluated(min(k, config.baseline_num_scenes or k)) * unit["sample"] * samples * pixels
    plan["triplane-rgb"] = config.rgb_minutes * 60 + unit["process"] + baseline

    def latent(scenes: int) -> float:  # a latent run on `scenes` of the new scenes, the same time per scene
        encode = unit["encode"] * area * scenes * config.num_train_views
        minutes = config.latent_minutes * scenes / k
        return minutes * 60 + unit["process"] + encode + evaluated(scenes) * latent_view

    for name in config.latent_runs():
        plan[name] = latent(k)
    for fewer in sorted(config.sweep_new_scenes):
        for name in config.latent_runs():
            plan[sweep_stage(name, fewer)] = latent(fewer)
    return plan


def sweep_stage(method: str, num_scenes: int) -> str:
    """The stage (and run folder) of a latent method's run on the first `num_scenes` new scenes of the K sweep."""
    return f"{method}-k{num_scenes}"
