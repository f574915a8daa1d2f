"""The per-rank entry of scene-parallel training, started by torchrun on every rank with ns-train's arguments:

    torchrun --nproc-per-node 2 -m latent_triplane_ns.distributed latent-triplane --data ... <usual ns-train flags>

Several machines: the same command on each, with `--nnodes N --node-rank i --rdzv-backend c10d
--rdzv-endpoint HOST:PORT` (docs/scaling.md). gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import List

import numpy as np
import torch
import torch.distributed as dist
import tyro
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.console import Console
from rich.markup import escape

from latent_triplane_ns.datamanager import LatentDataManagerConfig
from latent_triplane_ns.dataparsers.procedural import ProceduralCarsDataParserConfig
from latent_triplane_ns.distributed.shards import ShardError, ShardLayout, collection_scene_names, shard_dataparser
from latent_triplane_ns.distributed.trainer import SHARDS_DIR, DistributedTrainer, shard_dir
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.quiet import silence_harmless_warnings
from latent_triplane_ns.trainer import LatentTrainerConfig, latest_checkpoint_step

TIMEOUT_ENV = "LTN_DIST_TIMEOUT_S"
"""Environment variable: seconds a rank waits in a collective (or for the others to start) before it fails, instead
of hanging when another rank has stopped; default 1800."""


def _environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    missing = [
        name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ
    ]
    if missing:
        raise InputError(
            f"{', '.join(missing)} not set: start scene-parallel training with torchrun, e.g. torchrun "
            "--nproc-per-node 2 -m latent_triplane_ns.distributed latent-triplane <ns-train flags>"
        )
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def parse_config(argv: List[str]) -> TrainerConfig:
    """ns-train's command line, parsed as ns-train parses it, with its `--data` alias applied."""
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    config = tyro.cli(AnnotatedBaseConfigUnion, args=argv, prog="torchrun ... -m latent_triplane_ns.distributed")
    if config.load_config:
        raise InputError(
            f"--load-config {config.load_config}: not supported in scene-parallel training; give the method and its "
            "flags, and --load-dir <run>/nerfstudio_models to resume"
        )
    datamanager = config.pipeline.datamanager
    if not isinstance(datamanager, LatentDataManagerConfig):
        raise InputError(f"{config.method_name}: scene-parallel training runs the latent methods only")
    data = config.data or datamanager.data
    if data is not None:
        datamanager.dataparser.data = Path(data)
    config.data = None
    datamanager.data = None
    return config


def _same_everywhere(value, what: str) -> None:
    """Refuses to start when the ranks do not agree on `value` (e.g. the scenes their command lines select)."""
    values: List = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    odd = [rank for rank, v in enumerate(values) if v != values[0]]
    if odd:
        raise ShardError(f"ranks {odd} select other {what} than rank 0: every rank must run the same command")


def rank_config(config: TrainerConfig, layout: ShardLayout, rank: int) -> TrainerConfig:
    """The config rank `rank` trains with: its scenes only, its checkpoints in `shards/rank-<r>`, the shard's own
    checkpoint when resuming, ray steps and steps per scene counted for the largest shard, and no viewer, logging or
    evaluation on ranks other than 0."""
    mine = copy.deepcopy(config)
    datamanager = mine.pipeline.datamanager
    datamanager.dataparser = shard_dataparser(config.pipeline.datamanager.dataparser, layout, rank)
    mine.relative_model_dir = Path(SHARDS_DIR) / f"rank-{rank}"
    model = mine.pipeline.model
    # every rank switches to decoder steps, and stops, at the same step: the one of the largest shard
    largest = max(stop - start for start, stop in layout.ranges)
    if getattr(model, "ray_steps", None) is not None and getattr(model, "ray_steps_per_scene", 0):
        model.ray_steps, model.ray_steps_per_scene = model.ray_steps + model.ray_steps_per_scene * largest, 0
    if isinstance(mine, LatentTrainerConfig):
        mine.fold_steps_per_scene(largest)
    if config.load_dir is not None:
        resumed = Path(config.load_dir).parent
        layout.check_resumes(resumed / SHARDS_DIR)
        step = config.load_step if config.load_step is not None else latest_checkpoint_step(Path(config.load_dir))
        if step is None:
            raise InputError(f"{config.load_dir}: holds no merged checkpoint (step-*.ckpt) to resume from")
        mine.load_dir = shard_dir(resumed, rank)
        mine.load_step = step
        if not (mine.load_dir / f"step-{step:09d}.ckpt").is_file():
            raise InputError(f"{mine.load_dir}: rank {rank}'s checkpoint of step {step} is missing")
    if rank > 0:
        mine.vis = "tensorboard"  # nerfstudio writes events on rank 0 only; no second viewer
        mine.steps_per_eval_batch = mine.steps_per_eval_image = mine.steps_per_eval_all_images = 0
    return mine


def run(argv: List[str]) -> None:
    """Trains this rank's shard with nerfstudio's Trainer, then evaluates it into the gathered eval.json."""
    rank, world_size, local_rank = _environment()
    CONSOLE.quiet = rank > 0  # one log, rank 0's; errors of any rank still reach stderr (see entrypoint)
    config = parse_config(argv)
    cuda = config.machine.device_type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 1800)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    dataparser = config.pipeline.datamanager.dataparser
    names = collection_scene_names(dataparser)
    _same_everywhere(names, "scenes")
    layout = ShardLayout(names, world_size)
    if rank == 0:
        if isinstance(dataparser, ProceduralCarsDataParserConfig):
            dataparser.setup().get_dataparser_outputs("train")  # generate every scene once, before the ranks read
        config.set_timestamp()
    stamp = [config.timestamp]
    dist.broadcast_object_list(stamp, src=0)
    config.timestamp = stamp[0]
    dist.barrier()
    start, stop = layout.ranges[rank]
    CONSOLE.log(f"rank {rank} of {world_size}: scenes {start}..{stop - 1} ({stop - start} of {len(names)})")
    seed = config.machine.seed + rank  # as nerfstudio's own train_loop seeds each rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    trainer = DistributedTrainer(rank_config(config, layout, rank), config, layout, rank, local_rank)
    trainer.setup()
    began = time.perf_counter()
    trainer.train()
    trainer.train_seconds = time.perf_counter() - began
    CONSOLE.log(
        f"Checkpoint of all {len(names)} scenes: {trainer.merged_dir} (ns-viewer/ns-render/ns-eval "
        f"--load-config {Path(trainer.base_dir) / 'config.yml'})"
    )
    trainer.evaluate_collection()
    dist.barrier()
    dist.destroy_process_group()


def _lost_ranks(rank: int, world_size: int, wait_s: float = 3.0) -> List[int]:
    """After a collective failed: the ranks that do not answer a roll call in torchrun's store (each survivor
    signs in; whoever has not signed in after `wait_s` has stopped)."""
    try:
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=5)
        )
        store.set(f"ltn/alive/{rank}", "1")
        time.sleep(wait_s)
        return [r for r in range(world_size) if not store.check([f"ltn/alive/{r}"])]
    except (RuntimeError, ValueError, KeyError):
        return []


def _is_collective_failure(error: RuntimeError) -> bool:
    """Whether an error is a collective that failed because a peer went away (gloo raises a plain RuntimeError)."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(mark in text for mark in ("/gloo/", "NCCL", "Connection reset"))


def entrypoint() -> None:
    silence_harmless_warnings()
    rank = int(os.environ.get("RANK", 0))
    err = Console(stderr=True)
    try:
        run(sys.argv[1:])
    except InputError as error:
        err.print(f"[bold red]error:[/bold red] rank {rank}: {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except RuntimeError as error:
        if not (dist.is_initialized() and _is_collective_failure(error)):
            raise
        lost = _lost_ranks(rank, dist.get_world_size())
        who = f"rank {', '.join(map(str, lost))} stopped" if lost else "another rank stopped or failed"
        err.print(
            f"[bold red]error:[/bold red] rank {rank}: {who}; this rank cannot go on without it "
            f"({escape(type(error).__name__)}: {escape(str(error).splitlines()[0] if str(error) else '')})",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
