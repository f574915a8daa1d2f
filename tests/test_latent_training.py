"""`latent-triplane` end to end in nerfstudio's trainer: loss, viewer render path, ns-eval, frozen basis."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import fixed_batch_loss, reduced_config
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.utils.colormaps import apply_colormap
from nerfstudio.viewer.utils import CameraState, get_camera

from latent_triplane_ns.basis import BasisCheckpointError, read_basis_checkpoint


@pytest.fixture(scope="module")
def trained(tiny_collection, tmp_path_factory):
    """A 2-scene latent-triplane-small run of ray steps only, trained in nerfstudio's Trainer."""
    config = reduced_config(
        "latent-triplane-small", tiny_collection, tmp_path_factory.mktemp("runs"), steps=60, ray_steps=None
    )
    trainer = config.setup(local_rank=0, world_size=1)
    config.save_config()
    trainer.setup()
    before = fixed_batch_loss(trainer.pipeline)
    trainer.train()
    after = fixed_batch_loss(trainer.pipeline)
    return trainer, before, after


def test_two_scene_training_lowers_the_loss(trained):
    trainer, before, after = trained
    assert trainer.pipeline.model.field.triplanes.num_scenes == 2
    assert after < 0.5 * before
    assert list((trainer.base_dir / "nerfstudio_models").glob("step-*.ckpt"))


def test_viewer_render_path_at_odd_resolution(trained):
    trainer, _, _ = trained
    model = trainer.pipeline.model
    model.eval()
    c2w = trainer.pipeline.datamanager.eval_dataset.cameras.camera_to_worlds[0]
    state = CameraState(fov=0.9, aspect=121 / 67, c2w=c2w, camera_type=CameraType.PERSPECTIVE)
    camera = get_camera(state, 67, 121)
    outputs = model.get_outputs_for_camera(camera)
    assert list(outputs) == ["rgb", "latent", "depth", "accumulation"]
    assert outputs["rgb"].shape == (67, 121, 3)
    assert outputs["latent"].shape == (67, 121, 3)
    assert outputs["depth"].shape == (67, 121, 1) and outputs["accumulation"].shape == (67, 121, 1)
    latent_image = model.last_latent_image
    assert latent_image.shape == (9, 16, 4)  # ceil(67/8) x ceil(121/8)
    assert 0 <= float(outputs["rgb"].min()) and float(outputs["rgb"].max()) <= 1
    # rgb is the decoded latent image, cropped at the top-left
    decoded = model.autoencoder.decode(latent_image.permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    assert torch.allclose(outputs["rgb"], decoded[:67, :121], atol=1e-5)
    for key, value in outputs.items():
        assert apply_colormap(value).shape[-1] == 3, key
    # what the viewer does with depth when compositing
    rays = camera.generate_rays(camera_indices=0, keep_shape=False)
    assert (rays.directions * outputs["depth"].reshape(-1, 1)).shape == (67 * 121, 3)
    # the viewer's scene control picks which scene is drawn
    model.select_scene(model.scene_names[1])
    model.get_outputs_for_camera(camera)
    model.select_scene(model.scene_names[0])
    assert not torch.allclose(model.last_latent_image, latent_image)


def test_checkpoint_round_trip_through_ns_eval(trained, tmp_path):
    from nerfstudio.scripts.eval import ComputePSNR
    from nerfstudio.utils.eval_utils import eval_setup

    trainer, _, _ = trained
    config_file = trainer.base_dir / "config.yml"
    _, pipeline, _, step = eval_setup(config_file)
    assert step == trainer.config.max_num_iterations - 1
    camera, batch = pipeline.datamanager.eval_item(1)
    trainer.pipeline.model.eval()
    expected = trainer.pipeline.model.get_outputs_for_camera(camera)
    torch.manual_seed(0)
    loaded = pipeline.model.get_outputs_for_camera(camera)
    assert torch.allclose(loaded["depth"], expected["depth"], atol=0.05)
    assert torch.allclose(loaded["rgb"], expected["rgb"], atol=0.02)
    output = tmp_path / "eval.json"
    ComputePSNR(load_config=config_file, output_path=output).main()
    results = json.loads(output.read_text())["results"]
    for key in ("psnr", "ssim", "ae_psnr", "latent_psnr", "psnr/scene_00000", "psnr/scene_00001"):
        assert key in results, key
    assert results["psnr"] == pytest.approx((results["psnr/scene_00000"] + results["psnr/scene_00001"]) / 2, rel=1e-5)


def test_new_scenes_against_a_frozen_basis(trained, tiny_collection, tmp_path):
    trainer, _, _ = trained
    basis_dir = trainer.base_dir / "basis"
    basis = read_basis_checkpoint(basis_dir)
    assert basis.settings.scene_names == ("scene_00000", "scene_00001")
    config = reduced_config(
        "latent-triplane-small", tiny_collection, tmp_path, steps=20, scene_range=(2, 4), basis_checkpoint=basis_dir
    )
    fresh = config.setup(local_rank=0, world_size=1)
    config.save_config()
    fresh.setup()
    model = fresh.pipeline.model
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert torch.equal(model.field.triplanes.basis, basis.tensors["basis"])
    fresh.train()
    end = model.state_dict()
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed == {"field.triplanes.micro", "field.triplanes.weights"}


def test_basis_checkpoint_errors(trained, tiny_collection, tmp_path):
    trainer, _, _ = trained
    with pytest.raises(BasisCheckpointError, match="does not exist"):
        read_basis_checkpoint(tmp_path / "missing")
    config = reduced_config(
        "latent-triplane-small",
        tiny_collection,
        tmp_path,
        scene_range=(2, 4),
        basis_checkpoint=trainer.base_dir / "basis",
        num_basis=3,
        plane_resolution=8,
        micro_features=5,
    )
    # stage 2 takes its field's sizes from the basis: M=8, 16x16 planes, F_mic 8 + F_mac 16 (the preset's F_mac)
    model = config.pipeline.setup(device="cpu").model
    planes = model.field.triplanes
    assert (planes.num_basis, planes.resolution, planes.num_features) == (8, 16, 24)
    assert (config.pipeline.model.num_basis, config.pipeline.model.micro_features) == (8, 8)


def _decode_mse(pipeline, views: int = 6) -> float:
    """MSE(D(render), image) of a fixed draw of training views."""
    pipeline.datamanager._rng.manual_seed(1)
    ray_bundle, batch = pipeline.datamanager.next_train_views(views)
    with torch.no_grad():
        outputs = pipeline.model(ray_bundle)
        return float(pipeline.model.decode_loss(outputs["latent"], batch["image"]))


@pytest.mark.parametrize("patch", [None, 2], ids=["whole-views", "windows"])
def test_decoder_steps_fine_tune_the_shared_decoder_on_rendered_views(trained, tiny_collection, tmp_path, patch):
    from nerfstudio.utils.eval_utils import eval_setup

    trainer, _, _ = trained
    basis_dir = trainer.base_dir / "basis"
    config = reduced_config(
        "latent-triplane-small",
        tiny_collection,
        tmp_path,
        steps=40,
        scene_range=(2, 4),
        basis_checkpoint=basis_dir,
        ray_steps=5,  # 5 + 5 per scene of the 2: 15 ray steps, then 25 decoder steps
        ray_steps_per_scene=5,
        decoder_views_per_step=2,
        decoder_patch_size=patch,  # 2: windows of 2 x 2 of the 4 x 4 latent pixels
        decoder_ae_loss_mult=0.1,  # its loss runs through the encoder, which must not move
    )
    config.optimizers["decoder"]["optimizer"].lr = 1e-3
    fresh = config.setup(local_rank=0, world_size=1)
    config.save_config()
    fresh.setup()
    model = fresh.pipeline.model
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    decoder_steps = []
    original = fresh.pipeline.get_train_loss_dict

    def recording(step):
        outputs, losses, metrics = original(step)
        decoder_steps.append("dec_loss" in losses)
        return outputs, losses, metrics

    fresh.pipeline.get_train_loss_dict = recording
    fresh.train()
    assert decoder_steps == [False] * 15 + [True] * 25
    end = {k: v.detach().clone() for k, v in model.state_dict().items()}
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    decoder_keys = {k for k in start if k.startswith(("autoencoder.vae.decoder.", "autoencoder.vae.post_quant_conv."))}
    assert decoder_keys and decoder_keys <= changed
    assert not any(k.startswith("autoencoder.vae.encoder.") for k in changed)
    assert changed - decoder_keys == {"field.triplanes.micro", "field.triplanes.weights"}
    # The fine-tuned decoder decodes these scenes' renders better than the decoder it started from.
    tuned = _decode_mse(fresh.pipeline)
    model.load_state_dict({**end, **{k: start[k] for k in decoder_keys}})
    assert tuned < 0.9 * _decode_mse(fresh.pipeline)
    # The run's checkpoint carries the fine-tuned decoder to ns-eval.
    _, pipeline, _, _ = eval_setup(fresh.base_dir / "config.yml")
    loaded = pipeline.model.state_dict()
    assert all(torch.equal(loaded[k], end[k]) for k in decoder_keys)


def test_decoder_steps_can_train_only_the_decoders_last_block(trained, tiny_collection, tmp_path):
    trainer, _, _ = trained
    config = reduced_config(
        "latent-triplane-small",
        tiny_collection,
        tmp_path,
        steps=10,
        scene_range=(2, 4),
        basis_checkpoint=trainer.base_dir / "basis",
        ray_steps=2,  # then 8 decoder steps
        ray_steps_per_scene=0,
        decoder_views_per_step=2,
        decoder_trainable="last_block",
    )
    config.optimizers["decoder"]["optimizer"].lr = 1e-3
    fresh = config.setup(local_rank=0, world_size=1)
    fresh.setup()
    model = fresh.pipeline.model
    decoder = model.autoencoder.vae.decoder
    last = f"up_blocks.{len(decoder.up_blocks) - 1}."  # the toy autoencoder is an AutoencoderKL
    names = {id(p): n for n, p in decoder.named_parameters()}
    trained_names = {names[id(p)] for p in fresh.optimizers.parameters["decoder"]}
    assert trained_names == {n for n in names.values() if n.startswith((last, "conv_norm_out.", "conv_out."))}
    assert all(p.requires_grad == (n in trained_names) for n, p in decoder.named_parameters())
    # the frozen layers still carry the decode loss's gradient back to the planes
    _, losses, _ = fresh.pipeline.get_train_loss_dict(step=model.first_decoder_step)
    (to_planes,) = torch.autograd.grad(losses["dec_loss"], [model.field.triplanes.micro])
    assert to_planes.abs().sum() > 0
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh.train()
    end = model.state_dict()
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    prefix = "autoencoder.vae.decoder."
    assert {k[len(prefix) :] for k in changed if k.startswith(prefix)} == trained_names
    assert {"field.triplanes.micro", "field.triplanes.weights"} <= changed
    assert not any(k.startswith(("autoencoder.vae.encoder.", "autoencoder.vae.post_quant_conv.")) for k in changed)


def test_a_run_too_short_for_its_decoder_steps_is_told_so(trained, tiny_collection, tmp_path, capsys):
    trainer, _, _ = trained
    said = {}
    for steps in (40, 41):  # 2 scenes x 20 ray steps: decoder steps from step 40, the 41st step of a run
        config = reduced_config(
            "latent-triplane-small",
            tiny_collection,
            tmp_path / str(steps),
            steps=steps,
            scene_range=(2, 4),
            basis_checkpoint=trainer.base_dir / "basis",
            ray_steps=0,
            ray_steps_per_scene=20,
        )
        config.setup(local_rank=0, world_size=1).setup()
        said[steps] = " ".join(capsys.readouterr().out.split())
    assert "this run of 2 scene(s) makes ray steps only: its decoder steps would begin at step 40" in said[40]
    assert "the run has 40 steps. Give --max-num-iterations above 40 (or --steps-per-scene)" in said[40]
    assert "ray steps only" not in said[41]


def test_decoder_steps_need_an_autoencoder(tiny_collection, tmp_path):
    from latent_triplane_ns.errors import InputError

    config = reduced_config("triplane-rgb", tiny_collection, tmp_path, ray_steps=5)
    with pytest.raises(InputError, match="ray_steps starts decoder steps"):
        config.setup(local_rank=0, world_size=1).setup()


def test_the_scene_box_follows_the_model_to_its_device(trained):
    """On a GPU the model moves to CUDA while nerfstudio's SceneBox (not a module) stays on the CPU, so every ray
    failed with "found at least two devices" (seen on an H200). The meta device stands in for CUDA here: a CPU tensor
    mixed into it fails the same way."""
    trainer, _, _ = trained
    model = trainer.pipeline.model
    world = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
    box = model.scene_box.aabb
    expected = (world - box[0]) / (box[1] - box[0]) * 2.0 - 1.0
    assert torch.allclose(model.normalized_positions(world), expected)
    meta = copy.deepcopy(model).to("meta")
    moved = meta.normalized_positions(world.to("meta"))
    assert moved.device.type == "meta" and moved.shape == (2, 3)
