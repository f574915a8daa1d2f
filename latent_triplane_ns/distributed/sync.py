"""What ranks exchange: the averaged gradients of the shared parameters, averaged statistics, and per-scene tensors
gathered on rank 0. Per-scene parameters are never communicated during training."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
from nerfstudio.engine.optimizers import Optimizers
from torch import Tensor
from torch.nn import Parameter


def is_distributed() -> bool:
    """Whether this process is one rank of an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank_and_size() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def average_(tensors: Sequence[Tensor]) -> None:
    """Replaces each tensor, in place, by its mean over the ranks (one all-reduce for all of them)."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def broadcast_from_main(tensors: Sequence[Tensor]) -> None:
    """Sets each tensor, in place, to rank 0's value."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t, src=0)


def average_gradients_(params: Sequence[Parameter]) -> None:
    """Averages the gradients of shared parameters over the ranks. Every trainable parameter takes part, a missing
    gradient counting as zero, so every rank sends the same buffer even when its batch did not reach a parameter."""
    trainable = [p for p in params if p.requires_grad]
    if not is_distributed() or not trainable:
        return
    for p in trainable:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    average_([p.grad for p in trainable])


class SharedGradientOptimizers(Optimizers):
    """nerfstudio's `Optimizers`, averaging the gradients of the shared groups over the ranks before each step.

    Args:
        config: the trainer's optimizer config.
        param_groups: the model's parameter groups.
        per_scene_groups: groups holding one row per scene; they stay local to their rank.
    """

    def __init__(
        self, config: Dict[str, Any], param_groups: Dict[str, List[Parameter]], per_scene_groups: Sequence[str]
    ):
        super().__init__(config, param_groups)
        self.shared_groups = [name for name in param_groups if name not in per_scene_groups]

    def _average_shared(self, groups: Sequence[str]) -> None:
        average_gradients_([p for name in self.shared_groups if name in groups for p in self.parameters[name]])

    def optimizer_scaler_step_all(self, grad_scaler) -> None:
        self._average_shared(list(self.parameters))
        super().optimizer_scaler_step_all(grad_scaler)

    def optimizer_scaler_step_some(self, grad_scaler, param_groups: List[str]) -> None:
        self._average_shared(param_groups)
        super().optimizer_scaler_step_some(grad_scaler, param_groups)


def gather_on_main(value: Any) -> Optional[List[Any]]:
    """Every rank's `value` (tensors moved to the CPU), in rank order, on rank 0; None on the other ranks; `[value]`
    outside a process group."""
    if not is_distributed():
        return [value]
    rank, size = rank_and_size()
    value = _to_cpu(value)
    gathered: Optional[List[Any]] = [None] * size if rank == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def _to_cpu(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def barrier() -> None:
    """Waits for every rank (no-op outside a process group)."""
    if is_distributed():
        dist.barrier()
