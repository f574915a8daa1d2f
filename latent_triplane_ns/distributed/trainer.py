"""One rank of a scene-parallel run: nerfstudio's `Trainer` (through `LatentTrainer`) on the rank's shard, with the
shared gradients averaged, shard checkpoints for resume, and one merged checkpoint of every scene."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal

import torch
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from latent_triplane_ns.atomic import write_json
from latent_triplane_ns.distributed.shards import ShardLayout
from latent_triplane_ns.distributed.sync import SharedGradientOptimizers, barrier, broadcast_from_main, gather_on_main
from latent_triplane_ns.evaluation import SceneEvaluator
from latent_triplane_ns.trainer import LatentTrainer, checkpoint_name, remove_other_checkpoints, write_checkpoint

SHARDS_DIR = "shards"
"""Folder, in the run folder, holding each rank's own checkpoints (for resume) and the shard layout."""
EVAL_FILE = "eval.json"
"""File, in the run folder, of the held-out metrics of every scene, gathered from the ranks (ns-eval's layout)."""
MODEL_PREFIX = "_model."
"""Prefix of the model's keys in a pipeline state dict."""


def shard_dir(run_dir: Path, rank: int) -> Path:
    """Folder of rank `rank`'s own checkpoints in a run folder."""
    return Path(run_dir) / SHARDS_DIR / f"rank-{rank}"


class DistributedTrainer(LatentTrainer):
    """A rank of a scene-parallel run. Its config loads the rank's scenes only and keeps its checkpoints in
    `shards/rank-<r>`; `collection_config` is the run as the user typed it (all scenes), which config.yml holds.

    - The pipeline is built as a single process's (world_size 1: nerfstudio would wrap the whole model in DDP);
      `SharedGradientOptimizers` averages the shared groups' gradients over the ranks at every step instead.
    - Each save writes the rank's shard checkpoint, then rank 0 gathers the scenes of every rank and writes
      `nerfstudio_models/step-<n>.ckpt`, which ns-viewer, ns-render, ns-eval and a single-process `ns-train
      --load-dir` open as one collection. Older shard checkpoints are removed only after that merged checkpoint is
      written, so a kill at any moment leaves a step that every shard has.

    Args:
        config: the rank's config (its shard of the scenes, its checkpoint folder).
        collection_config: the whole run's config.
        layout: the split of the scenes over the ranks.
        rank: this rank.
        local_rank: this rank's index on its machine (its CUDA device).
    """

    def __init__(
        self,
        config: TrainerConfig,
        collection_config: TrainerConfig,
        layout: ShardLayout,
        rank: int,
        local_rank: int,
    ):
        super().__init__(config, local_rank=local_rank, world_size=1)
        self.collection_config = collection_config
        self.layout = layout
        self.rank = rank
        self.merged_dir = collection_config.get_checkpoint_dir()
        self.train_seconds: float | None = None
        """Wall seconds of `train()` on this rank (set by the launch), reported in eval.json."""

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        super().setup(test_mode)
        model = self.pipeline.model
        # Every rank starts from rank 0's shared weights (as DDP does): the basis, the MLP, the autoencoder; the scenes'
        # backgrounds are then encoded with that autoencoder.
        broadcast_from_main([v for k, v in model.state_dict().items() if k not in model.PER_SCENE_PARAMETERS])
        model.backgrounds.refresh(model.autoencoder)

    def setup_optimizers(self) -> SharedGradientOptimizers:
        model = self.pipeline.model
        return SharedGradientOptimizers(
            self.config.optimizers.copy(), self.pipeline.get_param_groups(), model.PER_SCENE_GROUPS
        )

    def save_run_config(self) -> None:
        if self.rank == 0:
            self.collection_config.pipeline.model.restore = self.config.pipeline.model.restore
            self.collection_config.save_config()
            self.layout.write(Path(self.base_dir) / SHARDS_DIR)

    def resumed_run_config(self) -> Path:
        return Path(self.base_dir) / "config.yml"

    def save_checkpoint(self, step: int) -> None:
        name = checkpoint_name(step)
        state = self.checkpoint_state(step)
        write_checkpoint(self.checkpoint_dir / name, state)
        model = self.pipeline.model
        keys = [MODEL_PREFIX + key for key in model.PER_SCENE_PARAMETERS if MODEL_PREFIX + key in state["pipeline"]]
        per_scene = {
            "pipeline": {key: state["pipeline"][key] for key in keys},
            "optimizers": {g: state["optimizers"][g] for g in model.PER_SCENE_GROUPS if g in state["optimizers"]},
        }
        shards = gather_on_main(per_scene)
        if shards is not None:
            merged = merge_states(state, shards)
            self.merged_dir.mkdir(parents=True, exist_ok=True)
            write_checkpoint(self.merged_dir / name, merged)
            if self.config.save_only_latest_checkpoint:
                remove_other_checkpoints(self.merged_dir, name)
        barrier()  # every shard has `name` and the merged checkpoint is written: older shard checkpoints may go
        if self.config.save_only_latest_checkpoint:
            remove_other_checkpoints(self.checkpoint_dir, name)

    def evaluate_collection(self) -> Dict[str, Any] | None:
        """Evaluates the rank's held-out views, and on rank 0 writes every scene's metrics, gathered from the ranks,
        to `eval.json` in ns-eval's layout (means weigh every scene the same). Returns that on rank 0."""
        evaluation = SceneEvaluator(self.pipeline.model, self.pipeline.datamanager).evaluate()
        shards = gather_on_main({"per_scene": evaluation.per_scene(), "train_seconds": self.train_seconds})
        if shards is None:
            return None
        per_scene = {name: metrics for shard in shards for name, metrics in shard["per_scene"].items()}
        keys = sorted(set.intersection(*(set(m) for m in per_scene.values()))) if per_scene else []
        results: Dict[str, float] = {k: sum(m[k] for m in per_scene.values()) / len(per_scene) for k in keys}
        for name, metrics in per_scene.items():
            for key, value in metrics.items():
                results[f"{key}/{name}"] = value
        checkpoints = sorted(self.merged_dir.glob("step-*.ckpt"))
        info = {
            "experiment_name": self.collection_config.experiment_name,
            "method_name": self.collection_config.method_name,
            "checkpoint": str(checkpoints[-1]) if checkpoints else None,
            "ranks": self.layout.world_size,
            "steps": self.step + 1,
            "train_seconds": [shard["train_seconds"] for shard in shards],
            "results": results,
        }
        write_json(Path(self.base_dir) / EVAL_FILE, info)
        CONSOLE.log(f"Held-out metrics of {len(per_scene)} scenes written to {Path(self.base_dir) / EVAL_FILE}")
        return info


def merge_states(main: Dict[str, Any], shards: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Rank 0's checkpoint with the per-scene parameters and optimizer states of every rank, concatenated in rank
    order (the ranks' shards are contiguous, in scene order). Shared parameters are equal on every rank."""
    merged = dict(main)
    merged["pipeline"] = dict(main["pipeline"])
    for key in shards[0]["pipeline"]:
        merged["pipeline"][key] = torch.cat([shard["pipeline"][key] for shard in shards])
    optimizers = dict(main["optimizers"])
    for group in shards[0]["optimizers"]:
        states = [shard["optimizers"][group] for shard in shards]
        if any(not s["state"] for s in states):  # a rank that never stepped this group: resumable from shards only
            optimizers.pop(group)
            merged.pop("optimizers", None)
            continue
        combined = {"param_groups": states[0]["param_groups"], "state": {}}
        for index in states[0]["state"]:
            combined["state"][index] = {
                k: torch.cat([s["state"][index][k] for s in states]) if torch.is_tensor(v) and v.dim() > 0 else v
                for k, v in states[0]["state"][index].items()
            }
        optimizers[group] = combined
    if "optimizers" in merged:
        merged["optimizers"] = optimizers
    return merged
