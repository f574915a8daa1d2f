"""The benchmark's training clock: a nerfstudio training callback that keeps time, evaluates and stops at the budget."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from latent_triplane_ns.benchmark.config import NEVER
from latent_triplane_ns.benchmark.measurement import sync
from latent_triplane_ns.evaluation import SceneEvaluator


class BudgetedTraining:
    """Training callback: keeps the training clock (evaluations excluded), evaluates on schedule, fits the
    learning-rate decay to the steps the time budget allows, and stops the trainer at the budget.

    Args:
        trainer: nerfstudio's Trainer, set up.
        budget_seconds: training time after which the run stops; None: the config's max_num_iterations steps.
        eval_times: training times of the curve's evaluations.
        evaluator: evaluates the curve's views.
        report: called with each progress event.
    """

    def __init__(
        self,
        trainer,
        budget_seconds: Optional[float],
        eval_times: Sequence[float],
        evaluator: SceneEvaluator,
        report: Callable[[Dict], None],
    ):
        self.trainer, self.budget_seconds, self.evaluator, self.report = trainer, budget_seconds, evaluator, report
        self.train_seconds, self.steps = 0.0, 0
        self.curve: List[Dict[str, float]] = []
        self.pending = [t for t in eval_times if t > 0]
        self.mark = time.perf_counter()
        self.last_report = 0.0
        self.device = torch.device(trainer.pipeline.model.device)
        self.decoder_steps_began = False

    def evaluate(self) -> None:
        means = self.evaluator.evaluate().means()
        point = {"train_seconds": self.train_seconds, "step": self.steps, "psnr": means["psnr"], "ssim": means["ssim"]}
        self.curve.append(point)
        self.report({"event": "eval", **point})

    def start(self) -> None:
        if self.budget_seconds is not None:
            self.set_horizon(NEVER)
        self.evaluate()
        sync(self.device)
        self.mark = time.perf_counter()

    def set_horizon(self, steps: int) -> None:
        """Steps over which the learning rates decay (nerfstudio's exponential decay reads it at every step)."""
        for group in self.trainer.config.optimizers.values():
            if group.get("scheduler") is not None and hasattr(group["scheduler"], "max_steps"):
                group["scheduler"].max_steps = max(int(steps), 1)

    def __call__(self, step: int) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.train_seconds += now - self.mark
        self.steps = step + 1
        budget = self.budget_seconds
        model = self.trainer.pipeline.model
        if not self.decoder_steps_began and getattr(model, "is_decoder_step", lambda _: False)(self.steps):
            self.decoder_steps_began = True  # the next step is the model's first decoder step
            self.report({"event": "decoder", "train_seconds": self.train_seconds, "step": self.steps})
        if budget is not None and (self.steps == 10 or (self.pending and self.train_seconds >= self.pending[0])):
            # the decay ends where the budget is expected to end at the speed seen so far
            self.set_horizon(self.steps * budget / max(self.train_seconds, 1e-9))
        if budget is None:
            done = self.steps >= self.trainer.config.max_num_iterations
        else:
            done = self.train_seconds >= budget
        if done or (self.pending and self.train_seconds >= self.pending[0]):
            while self.pending and self.pending[0] <= self.train_seconds:
                self.pending.pop(0)
            self.evaluate()
        elif now - self.last_report > 0.5:
            self.last_report = now
            self.report({"event": "step", "train_seconds": self.train_seconds, "step": self.steps})
        if done and budget is not None:
            self.set_horizon(self.steps)
            self.trainer.stop_training = True
        sync(self.device)
        self.mark = time.perf_counter()
