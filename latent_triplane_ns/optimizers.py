"""Optimisation pieces: per-scene Adam without momentum leak, and a checkpoint-safe learning-rate decay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

import torch
from nerfstudio.engine.optimizers import OptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecayScheduler, ExponentialDecaySchedulerConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class SceneSparseAdam(torch.optim.Optimizer):
    """Adam over parameters whose first dimension indexes scenes, updating only the rows with a gradient.

    A dense Adam keeps moving every scene by its momentum even when the scene is absent from the batch; here the
    moments, the bias-correction step count and the values of absent scenes stay exactly as they are ("lazy"
    Adam, as torch's SparseAdam does for sparse gradients). Sparse gradients (the field's) are read row by row;
    a dense gradient's rows count as present when any of their entries is non-zero.
    """

    def __init__(self, params, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-15):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None or param.numel() == 0:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros(param.shape[0], dtype=torch.float64, device=param.device)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                if grad.is_sparse:  # the field's gradient of the scenes in the batch only (see field.scene_rows)
                    grad = grad.coalesce()
                    rows, g = grad.indices()[0], grad.values()
                    if rows.numel() == 0:
                        continue
                else:
                    present = grad.reshape(grad.shape[0], -1).ne(0).any(dim=1)
                    if bool(present.all()):
                        rows = slice(None)  # every scene present: update in place, without gathering rows
                    else:
                        rows = present.nonzero().squeeze(1)
                        if rows.numel() == 0:
                            continue
                    g = grad[rows]
                state["step"][rows] += 1
                step = state["step"][rows].view(-1, *([1] * (param.dim() - 1)))
                exp_avg = state["exp_avg"][rows].mul_(beta1).add_(g, alpha=1 - beta1)
                exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if not isinstance(rows, slice):  # gathered rows are copies: write them back (a slice is a view)
                    state["exp_avg"][rows] = exp_avg
                    state["exp_avg_sq"][rows] = exp_avg_sq
                bias1 = (1 - beta1**step).to(param.dtype)
                bias2 = (1 - beta2**step).to(param.dtype)
                update = (exp_avg / bias1) / ((exp_avg_sq / bias2).sqrt() + group["eps"])
                param[rows] -= group["lr"] * update
        return loss


@dataclass
class SceneSparseAdamOptimizerConfig(OptimizerConfig):
    """Config of `SceneSparseAdam`, for per-scene parameter groups."""

    _target: Type = field(default_factory=lambda: SceneSparseAdam)
    lr: float = 1e-2
    """Learning rate."""
    eps: float = 1e-15
    """Adam's epsilon."""


class PlainFloatExponentialDecayScheduler(ExponentialDecayScheduler):
    """nerfstudio's exponential decay, with the multiplier as a Python float.

    nerfstudio's version returns a numpy scalar, which lands in the checkpoint's scheduler state; torch >= 2.6
    loads checkpoints with `weights_only=True` and then refuses the file (`ns-eval`, `ns-render`, `ns-viewer`).
    """

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> LRScheduler:
        scheduler = super().get_scheduler(optimizer, lr_init)
        numpy_lambda = scheduler.lr_lambdas[0]
        scheduler.lr_lambdas = [lambda step: float(numpy_lambda(step)) for _ in scheduler.lr_lambdas]
        scheduler._last_lr = [float(lr) for lr in scheduler._last_lr]
        for group in optimizer.param_groups:
            group["lr"] = float(group["lr"])
        return scheduler


@dataclass
class PlainFloatExponentialDecaySchedulerConfig(ExponentialDecaySchedulerConfig):
    """Config of `PlainFloatExponentialDecayScheduler`."""

    _target: Type = field(default_factory=lambda: PlainFloatExponentialDecayScheduler)
