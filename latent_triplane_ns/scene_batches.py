"""Scene-batched sampling: which scenes a training step draws its rays from, each scene visited once per epoch."""

from __future__ import annotations

from typing import List

import torch
from jaxtyping import Int
from torch import Tensor


class SceneSchedule:
    """Serves the scenes of successive steps: `per_step` distinct scenes at a time, in a shuffled order of all
    `num_scenes` that is drawn again at every epoch, so every scene is visited once per ceil(S / per_step) steps.

    Args:
        num_scenes: S, the scenes to visit.
        per_step: scenes per step (at most S are served).
        generator: the random generator of the shuffles.
    """

    def __init__(self, num_scenes: int, per_step: int, generator: torch.Generator):
        self.num_scenes = num_scenes
        self.per_step = min(per_step, num_scenes)
        self.generator = generator
        self._queue: List[int] = []

    def next(self) -> Int[Tensor, " k"]:
        """The next step's scenes."""
        while len(self._queue) < self.per_step:
            fresh = torch.randperm(self.num_scenes, generator=self.generator).tolist()
            waiting = set(self._queue)
            # scenes still waiting from the last epoch go to the end of the new one, so no step repeats a scene
            self._queue += [s for s in fresh if s not in waiting] + [s for s in fresh if s in waiting]
        chosen, self._queue = self._queue[: self.per_step], self._queue[self.per_step :]
        return torch.tensor(chosen, dtype=torch.long)


def ray_shares(count: int, scenes: int) -> Int[Tensor, " k"]:
    """How many of a step's `count` rays each of its `scenes` scenes gets: equal shares, the first few one more when
    `count` does not divide evenly."""
    share = torch.full((scenes,), count // scenes, dtype=torch.long)
    share[: count % scenes] += 1
    return share
