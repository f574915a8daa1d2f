"""LatentTrainer: learning rates that decay over the run's own steps, and the restore record in config.yml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import reduced_config, run_training


def test_the_decay_follows_max_num_iterations_and_config_records_the_autoencoder(tiny_collection, tmp_path):
    config = reduced_config("latent-triplane-small", tiny_collection, tmp_path, steps=30, ray_steps=None)
    scheduled = {name: group["scheduler"] for name, group in config.optimizers.items() if group["scheduler"]}
    # the decoder's rate stays flat; the backgrounds' group trains only with background 'learned'
    assert set(scheduled) == {"micro_planes", "basis_weights", "backgrounds", "basis", "mlp"}
    trainer = run_training(config)
    assert {scheduler.max_steps for scheduler in scheduled.values()} == {30}  # the run's own steps
    assert set(trainer.optimizers.optimizers) == set(scheduled) - {"backgrounds"}  # and no decoder group
    for name, optimizer in trainer.optimizers.optimizers.items():
        final = scheduled[name].lr_final
        # after its 30 steps the run ends at the schedule's final rate, not at 0.99 of the initial one
        assert optimizer.param_groups[0]["lr"] == pytest.approx(final, rel=0.15), name
    saved = yaml.load((trainer.base_dir / "config.yml").read_text(), Loader=yaml.Loader)
    architecture = saved.pipeline.model.restore["autoencoder"]["architecture"]
    assert architecture["latent_channels"] == 4 and architecture["_class_name"] == "AutoencoderKL"


@pytest.mark.parametrize("scenes", [2, 3])
def test_a_run_trains_steps_per_scene_for_each_of_its_scenes(tiny_collection, tmp_path, capsys, scenes):
    config = reduced_config("latent-triplane-small", tiny_collection, tmp_path, steps=4, scene_range=(0, scenes))
    config.pipeline.model.ray_steps = None
    config.steps_per_scene = 5
    trainer = run_training(config)
    total = 4 + 5 * scenes
    said = " ".join(capsys.readouterr().out.split())
    assert (
        f"Training {total} steps: --steps-per-scene 5 for each of {scenes} scene(s), plus --max-num-iterations 4"
        in said
    )
    assert [p.name for p in trainer.checkpoint_dir.glob("step-*.ckpt")] == [f"step-{total - 1:09d}.ckpt"]
    for name, optimizer in trainer.optimizers.optimizers.items():
        # the decay spans the whole run: it ends at the final rate at the last step, not at the fourth
        final = config.optimizers[name]["scheduler"].lr_final
        assert optimizer.param_groups[0]["lr"] == pytest.approx(final, rel=0.2), name
    assert trainer.optimizers.schedulers["mlp"].last_epoch == total
    from nerfstudio.utils import writer

    assert writer.GLOBAL_BUFFER["max_iter"] == total  # the terminal's "% done" counts the whole run


def test_a_truncated_checkpoint_is_named(tiny_collection, tmp_path):
    from latent_triplane_ns.trainer import CheckpointError

    trainer = run_training(reduced_config("triplane-rgb", tiny_collection, tmp_path, steps=3, scene_range=(0, 1)))
    (checkpoint,) = trainer.checkpoint_dir.glob("step-*.ckpt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    resumed = reduced_config("triplane-rgb", tiny_collection, tmp_path / "again", steps=3, scene_range=(0, 1))
    resumed.load_dir = trainer.checkpoint_dir
    again = resumed.setup(local_rank=0, world_size=1)
    with pytest.raises(CheckpointError, match=rf"{checkpoint.name}: the checkpoint cannot be read"):
        again.setup()


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed while writing")


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path):
    import os

    import torch

    from latent_triplane_ns.trainer import latest_checkpoint_step, write_checkpoint

    folder = tmp_path / "run" / "nerfstudio_models"
    write_checkpoint(folder / "step-000000005.ckpt", {"step": 5, "weights": torch.ones(1000)})
    with pytest.raises(RuntimeError, match="killed while writing"):  # torch.save had begun the file: a kill then
        write_checkpoint(folder / "step-000000010.ckpt", {"step": 10, "weights": torch.ones(1000), "x": Unpicklable()})
    # the folder holds only the whole checkpoint, nothing beside it (nerfstudio parses every name in it as a step)
    assert os.listdir(folder) == ["step-000000005.ckpt"] and latest_checkpoint_step(folder) == 5
    assert torch.load(folder / "step-000000005.ckpt", weights_only=True)["weights"].sum() == 1000
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["nerfstudio_models"]  # no temporary file left either


def test_a_run_that_fails_on_bad_input_leaves_no_folder(tiny_collection, tmp_path):
    from latent_triplane_ns.basis import BasisCheckpointError

    config = reduced_config("latent-triplane-small", tiny_collection, tmp_path, basis_checkpoint=tmp_path / "nope")
    config.save_config()  # as ns-train does before the trainer is set up
    base_dir = config.get_base_dir()
    assert (base_dir / "config.yml").is_file()
    with pytest.raises(BasisCheckpointError, match="basis checkpoint directory does not exist"):
        config.setup(local_rank=0, world_size=1).setup()
    assert not base_dir.exists()
    # the experiment and method folders it made are gone too; the output folder (the user's) stays
    assert Path(config.output_dir).is_dir() and not any(Path(config.output_dir).iterdir())


def test_load_config_would_retrain_over_a_run_and_is_refused(tiny_collection, tmp_path, monkeypatch):
    from latent_triplane_ns.trainer import CheckpointError

    trainer = run_training(reduced_config("triplane-rgb", tiny_collection, tmp_path, steps=2, scene_range=(0, 1)))
    saved = yaml.load((trainer.base_dir / "config.yml").read_text(), Loader=yaml.Loader)
    monkeypatch.setattr("sys.argv", ["ns-train", "--load-config", str(trainer.base_dir / "config.yml")])
    with pytest.raises(CheckpointError, match="already holds the checkpoints of a trained run"):
        saved.setup(local_rank=0, world_size=1).setup()
    assert len(list(trainer.checkpoint_dir.glob("step-*.ckpt"))) == 1  # untouched


def test_stage_2_resumes_after_its_basis_folder_moved(tiny_collection, tmp_path):
    stage1 = run_training(
        reduced_config("latent-triplane-small", tiny_collection, tmp_path / "s1", steps=3, num_basis=2)
    )
    basis = tmp_path / "basis"
    shutil.copytree(stage1.base_dir / "basis", basis)
    stage2 = dict(num_basis=2, basis_checkpoint=basis)
    first = run_training(
        reduced_config("latent-triplane-small", tiny_collection, tmp_path / "s2", steps=4, scene_range=(2, 4), **stage2)
    )
    shutil.move(basis, tmp_path / "moved")
    from latent_triplane_ns.trainer import CheckpointError

    def resume(total: int):
        config = reduced_config(
            "latent-triplane-small", tiny_collection, tmp_path / "s2", steps=total, scene_range=(2, 4), **stage2
        )
        config.load_dir = first.checkpoint_dir
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()  # the basis is gone: the model is rebuilt from the run's record, the checkpoint fills it
        return trainer

    with pytest.raises(CheckpointError, match="the checkpoint is at step 3, and this run has --max-num-iterations 4"):
        resume(4)  # the run's 4 steps are all done
    trainer = resume(7)  # --max-num-iterations is the run's total: 3 steps more
    assert trainer._start_step == 4 and trainer.config.max_num_iterations == 3
    trainer.train()
    assert sorted(p.name for p in first.checkpoint_dir.glob("step-*.ckpt"))[-1] == "step-000000006.ckpt"


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Path:
    """Two scenes of 32 px and one of 48 px in one collection."""
    import shutil

    from latent_triplane_ns.procedural import generate_collection

    base = tmp_path_factory.mktemp("mixed")
    common = dict(seed=3, num_train_views=3, num_test_views=1, workers=1, show_progress=False)
    generate_collection(base / "cars", num_scenes=2, image_size=32, **common)
    generate_collection(base / "large", num_scenes=1, first_scene=2, image_size=48, **common)
    shutil.move(base / "large" / "scene_00002", base / "cars" / "scene_00002")
    return base / "cars"


@pytest.mark.parametrize(
    "method, scenes, settings, message",
    [
        ("latent-triplane-small", (0, 3), {}, r"scene_00002/.*: all images of a collection must share one size "),
        (
            "latent-triplane-ae-small",
            (0, 2),
            dict(num_basis=3, ray_steps=4),
            r"cars: the collection has 2 scenes, too few for a basis of 3 plane sets: .*--pipeline.model.num-basis 2",
        ),
        (
            "latent-triplane-ae-small",
            (0, 2),
            dict(num_basis=2, ae_warmup_steps=0, ray_steps=4, joint_steps=3),
            r"take 7 steps, more than the run's 5: raise --max-num-iterations to 7",
        ),
    ],
    ids=["image-sizes", "too-few-scenes-for-the-basis", "phases-longer-than-the-run"],
)
def test_bad_collections_and_phases_are_refused_before_training_leaving_no_folder(
    mixed_sizes, tmp_path, method, scenes, settings, message
):
    from latent_triplane_ns.errors import InputError

    config = reduced_config(method, mixed_sizes, tmp_path, steps=5, scene_range=scenes, **settings)
    config.save_config()
    with pytest.raises(InputError, match=message):
        config.setup(local_rank=0, world_size=1).setup()
    assert not config.get_base_dir().exists()
