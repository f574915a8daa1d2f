"""nerfstudio's Trainer for the latent methods: decay over the run's steps, a config.yml that can rebuild the model,
and runs that fail on bad input leave nothing behind and lose nothing."""

from __future__ import annotations

import pickle
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Type

import torch
import yaml
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils import writer
from nerfstudio.utils.decorators import check_main_thread
from nerfstudio.utils.rich_utils import CONSOLE

from latent_triplane_ns.atomic import atomic_file
from latent_triplane_ns.errors import InputError


def checkpoint_files(folder: Path) -> list:
    """nerfstudio's checkpoints (`step-<step, 9 digits>.ckpt`) in `folder`, oldest step first; none for a folder that
    does not exist."""
    return sorted(Path(folder).glob("step-*.ckpt")) if Path(folder).is_dir() else []


def checkpoint_name(step: int) -> str:
    """nerfstudio's name of the checkpoint of `step`."""
    return f"step-{step:09d}.ckpt"


def remove_other_checkpoints(folder: Path, keep: str) -> None:
    """Deletes every checkpoint in `folder` but the one named `keep`."""
    for path in checkpoint_files(folder):
        if path.name != keep:
            path.unlink(missing_ok=True)


def write_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Writes a checkpoint whole or not at all. Its temporary file lies in the folder above (nerfstudio reads every
    name in a checkpoint folder as a checkpoint's), and a kill while writing leaves only that hidden file there."""
    atomic_file(path, lambda tmp: torch.save(state, tmp), staging=Path(path).parent.parent)


def latest_checkpoint_step(folder: Path):
    """The step of the latest checkpoint in `folder`, or None when it holds none."""
    files = checkpoint_files(folder)
    return int(files[-1].name[len("step-") : -len(".ckpt")]) if files else None


class CheckpointError(InputError):
    """A nerfstudio checkpoint that cannot be read, or a run folder that a new run would overwrite."""


@dataclass
class LatentTrainerConfig(TrainerConfig):
    """nerfstudio's `TrainerConfig`, with a run length that grows with the run's scenes."""

    _target: Type = field(default_factory=lambda: LatentTrainer)
    steps_per_scene: int = 0
    """Steps added to `max_num_iterations` for each scene of the run (in scene-parallel training, of the largest
    shard), so that a run of many scenes trains each of them as long as a run of few does: the run trains
    max_num_iterations + steps_per_scene x scenes steps, and its learning rates decay over that many. 0: the run
    trains max_num_iterations steps, as in nerfstudio."""

    def fold_steps_per_scene(self, scenes: int) -> None:
        """Makes the run's length a plain step count for `scenes` scenes: max_num_iterations + steps_per_scene x
        scenes, and steps_per_scene 0."""
        self.max_num_iterations, self.steps_per_scene = self.max_num_iterations + self.steps_per_scene * scenes, 0


class LatentTrainer(Trainer):
    """nerfstudio's `Trainer`, with these additions for the latent methods.

    - Length: with `steps_per_scene` (`LatentTrainerConfig`) the run's steps grow with its scenes, so that a preset
      trains a run of a hundred scenes as it trains one of five; the total is said when training starts.
    - Decay: a preset's schedulers are written for the preset's number of steps; with `--max-num-iterations N` they
      decay over N steps instead, so a shorter or longer run still ends at the schedule's final rate.
    - Resume: `--max-num-iterations` is the run's total number of steps, also after `--load-dir` (nerfstudio would
      train that many steps more): a resumed run with its usual flags continues to the same final step, with the same
      decay, as the run that was killed.
    - Restore: `ns-train` writes config.yml before the pipeline is built, so the autoencoder's architecture (needed
      to rebuild the model when its basis checkpoint or autoencoder folder has moved) is not known then. `setup`
      builds the pipeline, then writes the config again through nerfstudio's own `save_config`, with the record. A
      run resumed with `--load-dir` takes the record from its run's config.yml, so it resumes even when its basis
      or autoencoder folder has moved since: its checkpoint holds every weight.
    - No overwrite: `ns-train --load-config` (which drops every other flag, `--load-dir` included) would train from
      step 0 into the old run's folder, over its checkpoints; it is refused, saying how to resume.
    - No debris: a run whose setup fails on bad input removes the run folder it created (config.yml only) and the
      experiment and method folders above it that are left empty; a damaged checkpoint is named.
    - Whole checkpoints: nerfstudio writes a checkpoint in place, so a run killed while saving would leave a
      truncated latest checkpoint that `--load-dir` picks. Here each checkpoint is written to a hidden temporary file
      beside the checkpoint folder and renamed into it, so that folder only ever holds whole checkpoints.
    """

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        # until the pipeline tells how many scenes the run has (steps_per_scene), the decay's horizon is the fixed part
        self._decay_over(max(1, self.config.max_num_iterations))
        self._refuse_overwrite()
        self._restore_record_of_resumed_run()
        try:
            super().setup(test_mode)
        except InputError:
            self._remove_empty_run_folder()
            raise
        model = self.pipeline.model
        if hasattr(model, "restore_record"):
            self.config.pipeline.model.restore = model.restore_record()
            self.save_run_config()
        total = self._steps_for_scenes()
        self._warn_of_a_run_without_decoder_steps(total)
        if self._start_step > 0:  # resumed: train up to the run's total, not that many steps more
            if self._start_step >= total:
                raise CheckpointError(
                    f"{self.config.load_dir or self.config.load_checkpoint}: the checkpoint is at step "
                    f"{self._start_step - 1}, and this run has --max-num-iterations {total}: nothing is left to train "
                    "(raise --max-num-iterations to train longer)"
                )
            self.config.max_num_iterations = total - self._start_step

    def checkpoint_state(self, step: int) -> Dict[str, Any]:
        """The checkpoint of `step`, in nerfstudio's layout (what `Trainer._load_checkpoint` reads)."""
        pipeline = getattr(self.pipeline, "module", self.pipeline)  # unwrapped from DDP
        return {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }

    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        """Writes the checkpoint of `step` whole or not at all; then, as nerfstudio does, deletes the older ones
        unless every checkpoint is kept."""
        name, state = checkpoint_name(step), self.checkpoint_state(step)
        write_checkpoint(Path(self.checkpoint_dir) / name, state)
        if self.config.save_only_latest_checkpoint:
            remove_other_checkpoints(self.checkpoint_dir, name)

    def _decay_over(self, steps: int) -> None:
        """The preset's schedulers decay over `steps` (nerfstudio's exponential decay reads `max_steps` at every
        step, so this holds after the schedulers are built too)."""
        for group in self.config.optimizers.values():
            scheduler = group.get("scheduler")
            if scheduler is not None and hasattr(scheduler, "max_steps"):
                scheduler.max_steps = steps

    def _steps_for_scenes(self) -> int:
        """The run's total steps: max_num_iterations plus steps_per_scene for each of the model's scenes (a config
        without the field, such as stage 1's, whose phases are counted in steps: max_num_iterations). Said once
        when it grows with the scenes."""
        per_scene, fixed = getattr(self.config, "steps_per_scene", 0), self.config.max_num_iterations
        if per_scene:
            scenes = len(getattr(self.pipeline.model, "scene_names", ()))
            self.config.fold_steps_per_scene(scenes)
            total = self.config.max_num_iterations
            self._decay_over(total)
            writer.GLOBAL_BUFFER["max_iter"] = total  # the terminal's "% done" and ETA (set up before the scenes)
            if self.local_rank == 0:
                CONSOLE.print(
                    f"Training {total} steps: --steps-per-scene {per_scene} for each of {scenes} scene(s), plus "
                    f"--max-num-iterations {fixed}."
                )
        return self.config.max_num_iterations

    def _warn_of_a_run_without_decoder_steps(self, total: int) -> None:
        """A preset whose ray steps grow with the number of scenes may leave a run of many scenes no decoder step
        within --max-num-iterations: said once, with the step count that would reach them."""
        first = getattr(self.pipeline.model, "first_decoder_step", None)
        if first is None or first < total or self.local_rank != 0:
            return
        scenes = len(self.pipeline.model.scene_names)
        CONSOLE.print(
            f"[bold yellow]Warning:[/bold yellow] this run of {scenes} scene(s) makes ray steps only: its decoder "
            f"steps would begin at step {first} (ray_steps plus ray_steps_per_scene for each scene), and "
            f"the run has {total} steps. Give --max-num-iterations above {first} (or --steps-per-scene) for decoder steps."
        )

    def save_run_config(self) -> None:
        """Writes config.yml again, now with the `restore` record (nerfstudio's `save_config`)."""
        if self.local_rank == 0:
            self.config.save_config()

    def _refuse_overwrite(self) -> None:
        # `ns-train --load-config` replaces the whole command line by the saved config, whose run folder and
        # timestamp are the old run's: training would start again from step 0 over its checkpoints.
        if "--load-config" not in sys.argv or self.config.load_dir is not None or self.config.load_checkpoint:
            return
        existing = checkpoint_files(self.checkpoint_dir)
        if existing:
            raise CheckpointError(
                f"{self.checkpoint_dir}: already holds the checkpoints of a trained run ({existing[-1].name}), and "
                "ns-train --load-config would train again from step 0 over them, ignoring every other flag. To resume "
                f"the run: ns-train <method> --load-dir {self.checkpoint_dir} <its usual flags>; to look at it: "
                "ns-viewer/ns-eval --load-config"
            )

    def resumed_run_config(self) -> Path:
        """The config.yml of the run that `--load-dir` resumes."""
        return Path(self.config.load_dir).parent / "config.yml"

    def _restore_record_of_resumed_run(self) -> None:
        model_config = self.config.pipeline.model
        if self.config.load_dir is None or getattr(model_config, "restore", "n/a") is not None:
            return
        run_config = self.resumed_run_config()
        if run_config.is_file():
            saved = yaml.load(run_config.read_text(), Loader=yaml.Loader)
            model_config.restore = getattr(saved.pipeline.model, "restore", None)

    def _remove_empty_run_folder(self) -> None:
        base = Path(self.base_dir)
        if self.local_rank == 0 and base.is_dir() and {p.name for p in base.iterdir()} <= {"config.yml"}:
            shutil.rmtree(base, ignore_errors=True)
            # then the experiment and method folders above it, where nothing else is in them
            output_dir = Path(self.config.output_dir).resolve()
            for parent in base.resolve().parents:
                if parent == output_dir or output_dir not in parent.parents:
                    break
                try:
                    parent.rmdir()
                except OSError:  # not empty: another run's
                    break

    def _load_checkpoint(self) -> None:
        load_dir = self.config.load_dir
        if load_dir is not None and not checkpoint_files(Path(load_dir)):
            what = "holds no checkpoint (step-*.ckpt)" if Path(load_dir).is_dir() else "does not exist"
            raise CheckpointError(f"{load_dir}: the --load-dir folder {what}")
        try:
            super()._load_checkpoint()
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError) as err:
            where = self.config.load_checkpoint or self.config.load_dir
            if self.config.load_dir is not None:
                found = checkpoint_files(Path(self.config.load_dir))
                where = found[-1] if found else self.config.load_dir
            raise CheckpointError(
                f"{where}: the checkpoint cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                "it may be truncated: resume from an earlier step with --load-step, or train anew"
            ) from err
