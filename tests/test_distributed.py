"""Scene-parallel training over 2 local CPU ranks (gloo): shards, averaged shared gradients, the merged run folder,
resume over two "nodes" talking over loopback, and a rank that dies. Every launch has a timeout: a hang fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import torch
from conftest import reduced_config, run_training, tiny_flags

from latent_triplane_ns.distributed.shards import ShardError, ShardLayout

TORCHRUN = str(Path(sys.executable).parent / "torchrun")
TIMEOUT_S = 240
"""Longest a launch may take before the test fails (a hang must fail, not block the suite)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_run_flags(output_dir: Path, data: Path, steps: int, *extra: str) -> list:
    """ns-train flags of a tiny latent-triplane-small run (conftest's tiny settings, its compact autoencoder)."""
    return [
        "latent-triplane-small",
        *("--output-dir", str(output_dir), "--timestamp", "run", "--vis", "tensorboard"),
        *("--machine.device-type", "cpu", "--logging.local-writer.enable", "False"),
        *("--max-num-iterations", str(steps), "--steps-per-scene", "0", "--steps-per-save", str(max(1, steps // 2))),
        *("--steps-per-eval-batch", str(steps), "--steps-per-eval-image", str(steps)),
        *("--steps-per-eval-all-images", str(10 * steps)),
        *tiny_flags(compact_autoencoder=True),
        *("--pipeline.model.num-basis", "2"),
        *extra,
        *("scene-collection", "--data", str(data), "--scene-range", "0", "4"),
    ]


def launch(args: list, nodes: int = 1, node_rank: int = 0, port: int | None = None, **popen) -> subprocess.Popen:
    """torchrun of the scene-parallel entry: 2 ranks on one node, or 1 rank on each of `nodes` loopback nodes."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", LTN_DIST_TIMEOUT_S="60")
    per_node = 2 // nodes
    command = [TORCHRUN, "--nproc-per-node", str(per_node), "--max-restarts", "0"]
    if nodes == 1:
        command += ["--standalone"]
    else:
        command += ["--nnodes", str(nodes), "--node-rank", str(node_rank), "--rdzv-backend", "c10d"]
        command += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test"]
    command += ["-m", "latent_triplane_ns.distributed", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def two_nodes(args: list, node_1_args: list | None = None) -> list:
    """Two loopback "machines" of one rank each. Node 0 starts first and hosts the rendezvous store, as the machine
    named by --rdzv-endpoint does (on one host, whichever agent bound the port first would host it)."""
    port = _free_port()
    first = launch(args, nodes=2, node_rank=0, port=port)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline and first.poll() is None, "node 0 never opened its rendezvous store"
        time.sleep(0.2)
    return [first, launch(node_1_args or args, nodes=2, node_rank=1, port=port)]


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"a launch hung for {TIMEOUT_S} s:\n{output[-3000:]}")
    return process.returncode, output


def test_every_rank_switches_to_decoder_steps_and_stops_at_the_steps_of_the_largest_shard(tiny_collection, tmp_path):
    from latent_triplane_ns.distributed.launch import rank_config

    # 3 scenes on 2 ranks: shards of 2 and 1; 4 + 5 per scene of the largest shard = 14 ray steps on both ranks
    config = reduced_config("latent-triplane-small", tiny_collection, tmp_path, scene_range=(0, 3), ray_steps=4)
    config.pipeline.model.ray_steps_per_scene = 5
    config.steps_per_scene = 3  # and the run's length: 40 + 3 per scene of the largest shard = 46 steps on both
    layout = ShardLayout(("scene_00000", "scene_00001", "scene_00002"), 2)
    for rank in (0, 1):
        mine = rank_config(config, layout, rank)
        assert (mine.pipeline.model.ray_steps, mine.pipeline.model.ray_steps_per_scene) == (14, 0)
        assert (mine.max_num_iterations, mine.steps_per_scene) == (46, 0)
    assert (config.pipeline.model.ray_steps, config.pipeline.model.ray_steps_per_scene) == (4, 5)  # not changed
    assert (config.max_num_iterations, config.steps_per_scene) == (40, 3)


def test_layout_gives_each_rank_a_contiguous_shard_and_refuses_what_cannot_be_split(tmp_path):
    layout = ShardLayout(tuple(f"s{i}" for i in range(5)), 2)
    assert layout.ranges == [(0, 3), (3, 5)]  # the first S % W ranks hold one scene more
    assert layout.names_of(1) == ("s3", "s4")
    with pytest.raises(ShardError, match="3 ranks for a collection of 2 scenes"):
        ShardLayout(("a", "b"), 3)
    layout.write(tmp_path)
    layout.check_resumes(tmp_path)
    with pytest.raises(ShardError, match="trained on 2 ranks, this resume has 1"):
        ShardLayout(layout.scene_names, 1).check_resumes(tmp_path)
    with pytest.raises(ShardError, match="other scenes"):
        ShardLayout(("s0", "s1", "s2", "s3", "x"), 2).check_resumes(tmp_path)


def _shared_gradients(rank: int, world_size: int, port: int, data: Path, reference: Path, views: dict, out: Path):
    """One joint-phase step of stage 1 on this rank's `views[rank]` (global training-image indices), from the
    reference weights; writes the shared parameters' gradients after the ranks averaged them."""
    import torch.distributed as dist

    from latent_triplane_ns.distributed.sync import SharedGradientOptimizers

    torch.set_num_threads(1)
    if world_size > 1:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=60),
        )
    per_rank = 4 // world_size
    scenes = (rank * per_rank, (rank + 1) * per_rank)
    # the encoder's mean: a posterior draw would differ between a batch of 4 views and two batches of 2
    config = reduced_config("latent-triplane-ae", data, out, scene_range=scenes, num_basis=2, joint_encode_mode="mean")
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    model = pipeline.model
    state = torch.load(reference, weights_only=False)
    # the reference's weights, this rank's rows of the per-scene ones; loading encodes the scenes' backgrounds with
    # the reference's autoencoder
    rows = slice(scenes[0], scenes[1])
    model.load_state_dict({k: v[rows] if k in model.PER_SCENE_PARAMETERS else v for k, v in state.items()})
    model.set_trainable("joint")
    optimizers = SharedGradientOptimizers(config.optimizers, model.get_param_groups(), model.PER_SCENE_GROUPS)
    dm = pipeline.datamanager
    local = torch.tensor([v - 6 * scenes[0] for v in views[rank]])  # 6 training views per scene, in scene order
    cameras = dm.latent_train_cameras
    h, w = int(cameras.height[0]), int(cameras.width[0])
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = (torch.stack([y, x], dim=-1).float() + 0.5).expand(len(local), h, w, 2)
    rays = cameras.generate_rays(camera_indices=local.view(-1, 1, 1, 1).expand(len(local), h, w, 1), coords=coords)
    outputs = {}
    for i in range(len(local)):  # view by view, each with its own seeded stratified samples, as in every process
        torch.manual_seed(int(views[rank][i]))
        for key, value in model(rays[i : i + 1]).items():
            outputs.setdefault(key, []).append(value)
    outputs = {key: torch.cat(values) for key, values in outputs.items()}
    batch = {"image": torch.stack([dm.load_image(dm.train_dataset, int(i)) for i in local])}
    loss = sum(model.joint_loss_dict(outputs, batch).values())
    loss.backward()
    optimizers._average_shared(list(optimizers.parameters))
    per_scene = {"_".join(k.split(".")) for k in model.PER_SCENE_PARAMETERS}
    shared = {
        n: p.grad for n, p in model.named_parameters() if p.grad is not None and n.replace(".", "_") not in per_scene
    }
    torch.save(shared, out / f"grads-{world_size}-{rank}.pt")
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_stage_1_shared_gradients_of_two_ranks_equal_one_process_holding_every_scene(tiny_collection, tmp_path):
    import torch.multiprocessing as mp

    config = reduced_config("latent-triplane-ae", tiny_collection, tmp_path, scene_range=(0, 4), num_basis=2)
    torch.manual_seed(0)
    reference = tmp_path / "reference.pt"
    torch.save(config.pipeline.setup(device="cpu", test_mode="val").model.state_dict(), reference)
    halves = {0: [1, 8], 1: [13, 22]}  # two views of each half's scenes
    _shared_gradients(0, 1, 0, tiny_collection, reference, {0: halves[0] + halves[1]}, tmp_path)
    context = mp.start_processes(
        _shared_gradients, args=(2, _free_port(), tiny_collection, reference, halves, tmp_path), nprocs=2, join=False
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2 ranks hung")
    single = torch.load(tmp_path / "grads-1-0.pt")
    ranks = [torch.load(tmp_path / f"grads-2-{r}.pt") for r in (0, 1)]
    assert {"field.triplanes.basis", "field.mlp.layers.0.weight"} <= set(single)
    assert any(name.startswith("autoencoder.") for name in single)  # the encoder and decoder are shared in stage 1
    assert set(ranks[0]) == set(ranks[1]) == set(single)
    for name, gradient in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # every rank steps with the same average
        assert float(gradient.abs().max()) > 0, name
        torch.testing.assert_close(ranks[0][name], gradient, rtol=1e-4, atol=1e-7, msg=name)


@pytest.fixture(scope="module")
def stage_2(tiny_collection, tmp_path_factory):
    """A basis from a short single-process stage 1, then 6 steps of stage 2 against it (frozen) on 2 ranks."""
    root = tmp_path_factory.mktemp("distributed")
    basis_run = run_training(
        reduced_config("latent-triplane-small", tiny_collection, root / "basis", steps=10, num_basis=2)
    )
    basis = Path(basis_run.base_dir) / "basis"
    extra = ("--pipeline.model.basis-checkpoint", str(basis), "--pipeline.datamanager.scenes-per-batch", "2")
    returncode, output = finish(launch(tiny_run_flags(root / "parallel", tiny_collection, 6, *extra)))
    assert returncode == 0, output[-4000:]
    run = root / "parallel" / "unnamed" / "latent-triplane-small" / "run"
    return {"root": root, "basis": basis, "run": run, "output": output, "extra": extra}


def shard_config(stage_2: dict, data: Path, name: str, rank: int):
    """The single-process config of rank `rank`'s shard of the stage-2 run (its 2 scenes, the same basis)."""
    scenes = (2 * rank, 2 * rank + 2)
    folder = stage_2["root"] / f"{name}-{rank}"
    return reduced_config(
        "latent-triplane-small",
        data,
        folder,
        steps=6,
        scene_range=scenes,
        basis_checkpoint=stage_2["basis"],
        num_basis=2,
    )


@pytest.mark.slow
def test_stage_2_each_rank_trains_its_scenes_as_one_process_holding_only_them(stage_2, tiny_collection):
    merged = torch.load(stage_2["run"] / "nerfstudio_models" / "step-000000005.ckpt", weights_only=False)
    assert sorted(p.name for p in (stage_2["run"] / "shards" / "rank-1").iterdir()) == ["step-000000005.ckpt"]
    for rank in (0, 1):
        config = shard_config(stage_2, tiny_collection, "alone", rank)
        config.steps_per_save = 3
        config.pipeline.datamanager.scenes_per_batch = 2
        alone = run_training(config, rank).pipeline.model.field.triplanes  # seeded as the launch seeds the rank
        for name in ("micro", "weights"):
            rows = merged["pipeline"][f"_model.field.triplanes.{name}"][2 * rank : 2 * rank + 2]
            torch.testing.assert_close(rows, getattr(alone, name).detach(), rtol=0, atol=1e-6, msg=f"{name} {rank}")
    assert "rank 1 of 2: scenes 2..3" not in stage_2["output"]  # one log: rank 0's


@pytest.mark.slow
def test_the_merged_run_opens_with_every_scene_and_renders_each_as_its_rank_did(stage_2, tiny_collection):
    import json

    from nerfstudio.utils.eval_utils import eval_setup

    from latent_triplane_ns.evaluation import SceneEvaluator

    _, pipeline, checkpoint, step = eval_setup(stage_2["run"] / "config.yml", test_mode="val")
    assert step == 5 and pipeline.model.scene_names == [f"scene_0000{i}" for i in range(4)]
    merged = SceneEvaluator(pipeline.model, pipeline.datamanager).evaluate().per_scene()
    for rank in (0, 1):
        config = shard_config(stage_2, tiny_collection, "view", rank)
        own = config.pipeline.setup(device="cpu", test_mode="val")
        state = torch.load(stage_2["run"] / "shards" / f"rank-{rank}" / "step-000000005.ckpt", weights_only=False)
        own.load_pipeline(state["pipeline"], state["step"])
        for name, metrics in SceneEvaluator(own.model, own.datamanager).evaluate().per_scene().items():
            assert metrics["psnr"] == pytest.approx(merged[name]["psnr"], abs=1e-4), name
    gathered = json.loads((stage_2["run"] / "eval.json").read_text())
    assert gathered["ranks"] == 2 and gathered["checkpoint"] == str(checkpoint)
    results = gathered["results"]
    for name, metrics in merged.items():
        assert results[f"psnr/{name}"] == pytest.approx(metrics["psnr"], abs=1e-4)
    assert results["psnr"] == pytest.approx(sum(m["psnr"] for m in merged.values()) / 4, abs=1e-4)


@pytest.mark.slow
def test_resume_over_two_loopback_nodes_continues_every_shard(stage_2, tiny_collection):
    """The 2-rank run, resumed as two machines of one rank each (torchrun's c10d rendezvous on 127.0.0.1)."""
    load = ("--load-dir", str(stage_2["run"] / "nerfstudio_models"))
    args = tiny_run_flags(stage_2["root"] / "resumed", tiny_collection, 10, *stage_2["extra"], *load)  # 6 steps done
    nodes = two_nodes(args)
    results = [finish(node) for node in nodes]
    assert all(code == 0 for code, _ in results), results[0][1][-3000:] + results[1][1][-3000:]
    run = stage_2["root"] / "resumed" / "unnamed" / "latent-triplane-small" / "run"
    before = torch.load(stage_2["run"] / "nerfstudio_models" / "step-000000005.ckpt", weights_only=False)
    after = torch.load(run / "nerfstudio_models" / "step-000000009.ckpt", weights_only=False)  # steps 6..9 of 10
    for rank in (0, 1):
        shard = torch.load(run / "shards" / f"rank-{rank}" / "step-000000009.ckpt", weights_only=False)
        rows = slice(2 * rank, 2 * rank + 2)
        micro = "_model.field.triplanes.micro"
        assert torch.equal(shard["pipeline"][micro], after["pipeline"][micro][rows])
        assert not torch.equal(shard["pipeline"][micro], before["pipeline"][micro][rows])  # it trained on
        assert int(shard["optimizers"]["micro_planes"]["state"][0]["step"].max()) > 6  # Adam's count went on


@pytest.mark.slow
def test_a_resume_on_another_number_of_ranks_is_refused(stage_2, tiny_collection):
    load = ("--load-dir", str(stage_2["run"] / "nerfstudio_models"))
    args = tiny_run_flags(stage_2["root"] / "wrong", tiny_collection, 4, *stage_2["extra"], *load)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [TORCHRUN, "--standalone", "--nproc-per-node", "1", "-m", "latent_triplane_ns.distributed", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode != 0
    assert "trained on 2 ranks, this resume has 1" in " ".join(result.stderr.split()), result.stderr[-3000:]


@pytest.mark.slow
def test_when_one_rank_dies_the_other_exits_and_names_it(tiny_collection, tmp_path):
    """Two loopback nodes of one rank each; rank 1 is killed mid-training (SIGKILL, after its first checkpoint)."""
    args = tiny_run_flags(tmp_path, tiny_collection, 100000, "--pipeline.datamanager.scenes-per-batch", "2")
    args[args.index("--steps-per-save") + 1] = "2"
    nodes = two_nodes(args)
    shard = tmp_path / "unnamed" / "latent-triplane-small" / "run" / "shards" / "rank-1"
    deadline = time.monotonic() + TIMEOUT_S
    while not any(shard.glob("step-*.ckpt")):
        assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "no checkpoint was written"
        time.sleep(0.5)
    (worker,) = psutil.Process(nodes[1].pid).children()
    os.kill(worker.pid, signal.SIGKILL)
    (code0, output0), (code1, output1) = finish(nodes[0]), finish(nodes[1])
    assert code0 != 0 and code1 != 0
    assert "rank      : 1" in output1 or "rank: 1" in output1, output1[-3000:]  # torchrun names its dead worker
    assert "rank 0: rank 1 stopped" in " ".join(output0.split()), output0[-3000:]


@pytest.mark.slow
def test_more_ranks_than_scenes_and_ranks_that_select_other_scenes_are_refused_before_training(
    tiny_collection, tmp_path
):
    one_scene = tiny_run_flags(tmp_path / "one", tiny_collection, 4)
    one_scene[one_scene.index("--scene-range") + 2] = "1"  # scenes [0, 1)
    code, output = finish(launch(one_scene))
    assert code != 0 and "2 ranks for a collection of 1 scenes" in " ".join(output.split()), output[-3000:]
    # two machines whose command lines differ: node 1 selects scenes [0, 3)
    args = tiny_run_flags(tmp_path / "odd", tiny_collection, 4)
    other = list(args)
    other[other.index("--scene-range") + 2] = "3"
    first, second = two_nodes(args, other)
    (code0, output0), (code1, _) = finish(first), finish(second)
    assert code0 != 0 and code1 != 0
    assert "ranks [1] select other scenes than rank 0" in " ".join(output0.split()), output0[-3000:]
    assert not (tmp_path / "odd").exists()  # nothing was written
