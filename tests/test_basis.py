"""The typed basis checkpoint: written and read back, and one clear error for each kind of damage."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from latent_triplane_ns.autoencoder import AutoencoderConfig, LatentAutoencoder
from latent_triplane_ns.basis import (
    SCENES_FILE,
    SETTINGS_FILE,
    TENSORS_FILE,
    VERSION,
    BasisCheckpointError,
    read_basis_checkpoint,
    write_basis_checkpoint,
)
from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField


def small_model(num_scenes=2, micro=3, macro=2, basis=2):
    torch.manual_seed(0)
    field = TriplaneField(MicroMacroTriplanes(num_scenes, 4, micro, macro, basis), 3, 8, "torch")
    return SimpleNamespace(
        field=field,
        autoencoder=LatentAutoencoder(AutoencoderConfig(source="identity")),
        config=SimpleNamespace(mlp_hidden_width=8),
        scene_names=[f"s{i}" for i in range(num_scenes)],
    )


@pytest.fixture
def written(tmp_path):
    model = small_model()
    return model, write_basis_checkpoint(model, tmp_path / "basis", step=7, complete=True)


def test_round_trip_is_typed_and_complete(written):
    model, path = written
    basis = read_basis_checkpoint(path)
    s = basis.settings
    assert (s.plane_resolution, s.macro_features, s.num_basis, s.num_features, s.micro_features) == (4, 2, 2, 5, 3)
    assert s.scene_names == ("s0", "s1") and s.autoencoder == "identity" and s.latent_channels == 3
    assert s.step == 7 and s.complete
    basis.check_complete()
    assert torch.equal(basis.tensors["basis"], model.field.triplanes.basis.detach())
    # a field of the same sizes gets the basis, the MLP and the asked-for scene's planes
    other = small_model(num_scenes=3)
    with torch.no_grad():
        other.field.triplanes.micro.zero_()
    assert basis.load_into(other.field, ["new", "s1", "s9"]) == ["s1"]
    assert torch.equal(other.field.triplanes.micro[1], model.field.triplanes.micro[1].detach())
    assert not other.field.triplanes.micro[0].any() and not other.field.triplanes.micro[2].any()
    for mine, theirs in zip(other.field.mlp.parameters(), model.field.mlp.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_a_missing_key_or_another_version_names_the_file(written):
    _, path = written
    settings = json.loads((path / SETTINGS_FILE).read_text())
    del settings["num_basis"], settings["collection"]
    (path / SETTINGS_FILE).write_text(json.dumps(settings))
    with pytest.raises(BasisCheckpointError, match=r"basis\.json: basis checkpoint lacks num_basis, collection"):
        read_basis_checkpoint(path)
    (path / SETTINGS_FILE).write_text(json.dumps({**settings, "version": VERSION + 1}))
    with pytest.raises(BasisCheckpointError, match=rf"basis\.json: basis checkpoint version {VERSION + 1}"):
        read_basis_checkpoint(path)
    (path / SETTINGS_FILE).write_text("[1, 2]")
    with pytest.raises(BasisCheckpointError, match=r"basis\.json: not a basis checkpoint"):
        read_basis_checkpoint(path)


def test_damaged_tensor_files_name_the_file(written):
    _, path = written
    for name in (TENSORS_FILE, SCENES_FILE):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(BasisCheckpointError, match=rf"{name}: damaged or not a safetensors file"):
            read_basis_checkpoint(path)
        (path / name).write_bytes(data)
    assert read_basis_checkpoint(path).settings.num_basis == 2


def test_scenes_of_another_shape_are_refused_not_dropped(written):
    _, path = written
    basis = read_basis_checkpoint(path)
    wider = small_model(micro=4, macro=2)  # the MLP reads 6 features: sizes differ from the checkpoint's
    with pytest.raises(BasisCheckpointError, match=r"scenes\.safetensors: its scenes' micro planes are"):
        basis.load_into(wider.field, ["s0"])


def test_a_model_config_takes_the_basis_sizes(written):
    _, path = written
    config = SimpleNamespace(plane_resolution=32, micro_features=8, macro_features=16, num_basis=8, mlp_hidden_width=8)
    changed = read_basis_checkpoint(path).fit_config(config)
    # the basis: 4x4 planes, F_mic 3 + F_mac 2, M=2, MLP width 8 (unchanged, so not reported)
    assert vars(config) == dict(plane_resolution=4, micro_features=3, macro_features=2, num_basis=2, mlp_hidden_width=8)
    assert changed == [
        "plane_resolution: 32 -> 4",
        "micro_features: 8 -> 3",
        "macro_features: 16 -> 2",
        "num_basis: 8 -> 2",
    ]
    assert read_basis_checkpoint(path).fit_config(config) == []


def test_settings_are_a_frozen_dataclass(written):
    _, path = written
    settings = read_basis_checkpoint(path).settings
    assert replace(settings, num_basis=7).num_basis == 7 and settings.num_basis == 2
    with pytest.raises(AttributeError):
        settings.num_basis = 3  # type: ignore[misc]


def test_a_killed_run_leaves_an_incomplete_basis_that_stage_2_refuses(tiny_collection, tmp_path):
    from conftest import reduced_config
    from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

    config = reduced_config("latent-triplane-small", tiny_collection, tmp_path / "stage1", steps=8, num_basis=2)
    config.steps_per_save = 3
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()

    def kill(step):
        if step == 4:
            raise RuntimeError("killed at step 4")

    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], kill))
    with pytest.raises(RuntimeError, match="killed"):
        trainer.train()
    settings = read_basis_checkpoint(trainer.base_dir / "basis").settings
    assert (settings.step, settings.complete) == (3, False)  # the periodic save at step 3, not a finished basis
    stage2 = dict(num_basis=2, basis_checkpoint=trainer.base_dir / "basis")
    refused = reduced_config("latent-triplane-small", tiny_collection, tmp_path / "stage2", **stage2)
    with pytest.raises(BasisCheckpointError, match=r"basis\.json: written at step 3 of a run that had not finished"):
        refused.pipeline.setup(device="cpu")
    allowed = reduced_config(
        "latent-triplane-small", tiny_collection, tmp_path / "s2", allow_incomplete_basis=True, **stage2
    )
    assert allowed.pipeline.setup(device="cpu").model.field.triplanes.num_basis == 2


def test_an_autoencoder_of_another_latent_size_than_the_basis_is_named_with_it(tmp_path):
    from latent_triplane_ns.autoencoder import CompactAEConfig

    def compact(channels):
        return LatentAutoencoder(
            AutoencoderConfig(
                source="compact", compact=CompactAEConfig(block_out_channels=(8, 8), latent_channels=channels)
            )
        )

    model = small_model()
    model.autoencoder = compact(3)  # 3 latent channels at 2x, as the field's output
    basis = read_basis_checkpoint(write_basis_checkpoint(model, tmp_path / "basis", step=1, complete=True))
    same, other = tmp_path / "same", tmp_path / "other"
    compact(3).vae.save_pretrained(str(same))
    compact(8).vae.save_pretrained(str(other))
    basis.check_autoencoder(same)
    with pytest.raises(
        BasisCheckpointError,
        match=r"other: an autoencoder of 8 latent channels at 2x downsampling, "
        r"while the basis .*basis was trained with one of 3 channels at 2x",
    ):
        basis.check_autoencoder(other)
    with pytest.raises(BasisCheckpointError, match="8 latent channels .* 3 channels at 1x"):  # an RGB basis
        read_basis_checkpoint(write_basis_checkpoint(small_model(), tmp_path / "rgb", 1, True)).check_autoencoder(other)
