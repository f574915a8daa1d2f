"""`latent-triplane-ae`: losses by hand, phase flags, a tiny stage-1 run and its basis checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import reduced_config

from latent_triplane_ns.basis import SCENES_FILE, SETTINGS_FILE, TENSORS_FILE, read_basis_checkpoint
from latent_triplane_ns.field import plane_tv

STEPS = {
    "ae_warmup_steps": 6,
    "ray_steps": 40,
    "joint_steps": 20,
    "views_per_step": 2,
    "num_basis": 2,
    "joint_encode_mode": "mean",
}


def stage1_config(data, tmp, steps=66, **overrides):
    config = reduced_config("latent-triplane-ae-small", data, tmp, steps=steps, **{**STEPS, **overrides})
    config.max_num_iterations = steps
    return config


def stage1_trainer(data, tmp, steps=66, **overrides):
    """nerfstudio's Trainer of a stage-1 config, set up and ready to train (its config saved, torch seeded)."""
    config = stage1_config(data, tmp, steps=steps, **overrides)
    config.save_config()
    torch.manual_seed(0)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


@pytest.fixture(scope="module")
def stage1(tiny_collection, tmp_path_factory):
    """A 2-scene stage-1 run through all three phases, with its per-step losses recorded."""
    trainer = stage1_trainer(tiny_collection, tmp_path_factory.mktemp("stage1"))
    pipeline = trainer.pipeline
    totals = []
    original = pipeline.get_train_loss_dict

    def recording(step):
        outputs, losses, metrics = original(step)
        totals.append((pipeline.model.phase_at(step), float(sum(v.detach() for v in losses.values()))))
        return outputs, losses, metrics

    pipeline.get_train_loss_dict = recording
    trainer.train()
    return trainer, totals


def test_phases_run_in_order_and_losses_fall(stage1):
    _, totals = stage1
    phases = [p for p, _ in totals]
    assert phases == ["warmup"] * 6 + ["fit"] * 40 + ["joint"] * 20
    fit = [v for p, v in totals if p == "fit"]
    joint = [v for p, v in totals if p == "joint"]
    assert sum(fit[-8:]) < 0.9 * sum(fit[:8])
    assert sum(joint[-5:]) < sum(joint[:5])


def test_phase_switching_flips_exactly_the_intended_flags(stage1):
    trainer, _ = stage1
    model = trainer.pipeline.model
    parts = {name: {id(p) for p in params} for name, params in model.autoencoder_parts().items()}
    scene_params = {id(p) for p in model.scene_parameters()}
    assert parts["encoder"] and parts["decoder"] and scene_params
    assert not (parts["encoder"] | parts["decoder"]) & scene_params
    # (encoder, decoder, scenes) trained in each phase
    expected = {
        "warmup": (True, True, False),
        "fit": (False, False, True),
        "joint": (True, True, True),
        "decoder": (False, True, True),
    }
    for phase, (encoder_on, decoder_on, scenes_on) in expected.items():
        model.set_trainable(phase)
        for name, param in model.named_parameters():
            if id(param) in parts["encoder"]:
                assert param.requires_grad == encoder_on, (phase, name)
            elif id(param) in parts["decoder"]:
                assert param.requires_grad == decoder_on, (phase, name)
            elif id(param) in scene_params:
                assert param.requires_grad == scenes_on, (phase, name)


def test_losses_on_hand_made_tensors(stage1):
    trainer, _ = stage1
    model = trainer.pipeline.model
    ae = model.autoencoder
    torch.manual_seed(1)
    images = torch.rand(2, 32, 32, 3)
    rendered = torch.rand(2, 4, 4, 4) * 0.2 + 0.4
    outputs = {"latent": rendered, "scene_index": torch.tensor([[0.0], [1.0]])}
    config = model.config
    with torch.no_grad():
        losses = model.joint_loss_dict(outputs, {"image": images})
        x = images.permute(0, 3, 1, 2)
        z = ae.vae.encode(x * 2 - 1).latent_dist.mean  # the test's config encodes with the mean
        r = rendered.permute(0, 3, 1, 2)
        # normalize/denormalize are checked by hand in test_autoencoder.py
        enc = config.enc_loss_mult * ((r - ae.normalize(z)) ** 2).mean()
        assert float(losses["enc_loss"]) == pytest.approx(float(enc), rel=1e-5)
        decoded = (ae.vae.decode(ae.denormalize(r)).sample + 1) / 2
        dec = config.dec_loss_mult * ((decoded - x) ** 2).mean()
        assert float(losses["dec_loss"]) == pytest.approx(float(dec), rel=1e-4)
        recon = (ae.vae.decode(z).sample + 1) / 2
        assert float(losses["ae_loss"]) == pytest.approx(
            config.ae_loss_mult * float(((recon - x) ** 2).mean()), rel=1e-5
        )
        tv = plane_tv(model.field.triplanes.planes(torch.tensor([0, 1])))
        assert float(losses["tv_loss"]) == pytest.approx(config.tv_loss_mult * float(tv) / 2, rel=1e-5)  # 2 scenes
        # the warm-up is ltn-train-ae's recipe: MSE of a posterior draw's reconstruction on the [-1, 1] scale
        torch.manual_seed(2)
        warm = model.warmup_loss_dict(images)
        torch.manual_seed(2)
        posterior = ae.vae.encode(x * 2 - 1).latent_dist
        draw = ae.vae.decode(posterior.sample()).sample
    assert float(warm["ae_loss"]) == pytest.approx(float(((draw - (x * 2 - 1)) ** 2).mean()), rel=1e-5)
    kl = config.kl_loss_mult * float(posterior.kl().mean())
    assert float(warm["kl_loss"]) == pytest.approx(kl, rel=1e-5)


def test_enc_grad_scale_scales_the_latent_losss_gradient_to_the_encoder_and_not_its_value(stage1):
    trainer, _ = stage1
    model = trainer.pipeline.model
    torch.manual_seed(1)
    images = torch.rand(2, 32, 32, 3)
    outputs = {"latent": torch.rand(2, 4, 4, 4) * 0.2 + 0.4, "scene_index": torch.tensor([[0.0], [1.0]])}
    encoder = model.autoencoder_parts()["encoder"]
    saved = model.config.enc_grad_scale, [param.requires_grad for param in encoder]
    values, grads = {}, {}
    try:
        for scale in (1.0, 0.25, 0.0):
            model.config.enc_grad_scale = scale
            for param in encoder:
                param.requires_grad_(True)
                param.grad = None
            loss = model.joint_loss_dict(outputs, {"image": images})["enc_loss"]
            if loss.requires_grad:  # stopped, and the render a constant here: nothing to differentiate
                loss.backward()
            values[scale] = float(loss)
            grads[scale] = torch.cat([torch.zeros(0) if p.grad is None else p.grad.view(-1) for p in encoder])
    finally:
        model.config.enc_grad_scale = saved[0]
        for param, trains in zip(encoder, saved[1], strict=True):
            param.requires_grad_(trains)
            param.grad = None
    assert values[0.25] == pytest.approx(values[1.0], rel=1e-6) and values[0.0] == pytest.approx(values[1.0], rel=1e-6)
    assert float(grads[1.0].abs().sum()) > 0 and len(grads[0.0]) == 0  # stopped: no gradient reaches the encoder
    assert torch.allclose(grads[0.25], 0.25 * grads[1.0], rtol=1e-4, atol=1e-10)


def test_basis_checkpoint_is_portable_and_reproduces_a_training_scene(stage1, tiny_collection, tmp_path):
    trainer, _ = stage1
    basis_dir = trainer.base_dir / "basis"
    before_joint = read_basis_checkpoint(trainer.base_dir / "basis_before_joint").settings
    assert before_joint.num_basis == 2 and (before_joint.step, before_joint.complete) == (6 + 40, True)
    final = read_basis_checkpoint(basis_dir).settings
    assert (final.step, final.complete) == (66, True)
    files = {p.name for p in basis_dir.iterdir()}
    assert files == {SETTINGS_FILE, TENSORS_FILE, SCENES_FILE, "autoencoder"}
    settings_text = (basis_dir / SETTINGS_FILE).read_text()
    assert str(trainer.base_dir) not in settings_text and "/" not in json.dumps(json.loads(settings_text)["collection"])
    basis = read_basis_checkpoint(basis_dir)
    assert set(basis.tensors) == {"basis"} | {k for k in basis.tensors if k.startswith("mlp.")}
    assert not any("optim" in k or "exp_avg" in k for k in basis.tensors)
    # latent-triplane on the same scenes, loaded from the basis with no training, renders identically (up to float
    # rounding: each model encodes the scenes' background colours itself, with the same autoencoder)
    config = reduced_config(
        "latent-triplane-small",
        tiny_collection,
        tmp_path,
        num_basis=2,
        basis_checkpoint=basis_dir,
        load_basis_scenes=True,
    )
    pipeline = config.pipeline.setup(device="cpu")
    stage1_model = trainer.pipeline.model.eval()
    fresh_model = pipeline.model.eval()
    camera, _ = trainer.pipeline.datamanager.eval_item(0)
    expected = stage1_model.get_outputs_for_camera(camera)
    got = fresh_model.get_outputs_for_camera(camera)
    assert torch.allclose(got["rgb"], expected["rgb"], atol=1e-5, rtol=0)
    assert torch.allclose(fresh_model.last_latent_image, stage1_model.last_latent_image, atol=1e-6, rtol=0)


def test_an_autoencoder_tiny_goes_through_every_phase_into_the_basis(tiny_collection, tmp_path):
    # the shipped autoencoder is an AutoencoderTiny: stage 1 warms it up, fits, fine-tunes it jointly and stores it
    from conftest import tiny_autoencoder_config

    trainer = stage1_trainer(
        tiny_collection,
        tmp_path,
        steps=16,
        ae_warmup_steps=2,
        ray_steps=8,
        joint_steps=6,
        autoencoder=tiny_autoencoder_config(kind="tiny"),
    )
    trainer.train()
    after = read_basis_checkpoint(trainer.base_dir / "basis").build_autoencoder().vae
    before = read_basis_checkpoint(trainer.base_dir / "basis_before_joint").build_autoencoder().vae
    assert type(after).__name__ == type(before).__name__ == "AutoencoderTiny"
    changed = [k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert changed and all(k.startswith(("encoder.", "decoder.")) for k in changed)  # the joint phase trained it


def test_the_decoder_phase_fine_tunes_only_the_decoder_on_rendered_windows(tiny_collection, tmp_path):
    # warm-up, fit, then (no joint phase) 6 decoder steps on 2 x 2 windows of the 4 x 4 latent views
    trainer = stage1_trainer(
        tiny_collection,
        tmp_path,
        steps=20,
        ray_steps=8,
        joint_steps=0,
        decoder_patch_size=2,
        decoder_views_per_step=2,
    )
    pipeline = trainer.pipeline
    model = pipeline.model
    seen, before = [], {}
    original = pipeline.get_train_loss_dict

    def recording(step):
        if model.phase_at(step) == "decoder" and not before:
            before.update({k: v.detach().clone() for k, v in model.autoencoder.vae.state_dict().items()})
        outputs, losses, metrics = original(step)
        seen.append((model.phase_at(step), set(losses)))
        return outputs, losses, metrics

    pipeline.get_train_loss_dict = recording
    trainer.train()
    assert [phase for phase, _ in seen] == ["warmup"] * 6 + ["fit"] * 8 + ["decoder"] * 6
    assert all("dec_loss" in losses for phase, losses in seen if phase == "decoder")
    # its rate: the fit phase's 2e-3 times decoder_lr_scale's 0.5
    assert [g["lr"] for g in trainer.optimizers.optimizers["decoder"].param_groups] == [1e-3]
    after = read_basis_checkpoint(trainer.base_dir / "basis").build_autoencoder().vae.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed)
    assert all(torch.equal(after[k], v) for k, v in model.autoencoder.vae.state_dict().items())


def test_bad_input_is_refused_before_training(tiny_collection, tmp_path):
    with pytest.raises(ValueError, match="counts its phases in steps: give the fit phase's length as ray_steps"):
        stage1_config(tiny_collection, tmp_path, ray_steps_per_scene=5).pipeline.setup(device="cpu")
    with pytest.raises(ValueError, match="too few for a basis of 3"):
        stage1_config(tiny_collection, tmp_path, num_basis=3).pipeline.setup(device="cpu")
    config = stage1_config(tiny_collection, tmp_path)
    config.pipeline.model.autoencoder.compact.block_out_channels = (8, 8, 8, 8, 8, 8)  # 32x: 32 px images are fine
    assert config.pipeline.setup(device="cpu").model.autoencoder.downsample_factor == 32
    config.pipeline.model.autoencoder.compact.block_out_channels = (8, 8, 8, 8, 8, 8, 8)  # 64x: they are not
    with pytest.raises(ValueError, match="not a multiple of the autoencoder's downsampling factor 64"):
        config.pipeline.setup(device="cpu")


def test_a_short_joint_phase_keeps_a_trained_autoencoders_held_out_reconstruction(tiny_collection, tmp_path):
    # a 4x compact autoencoder trained by the warm-up, the fit, then a short joint phase with the preset's joint
    # settings (posterior draws, the latent loss's gradient to the encoder scaled, the autoencoder loss): the
    # reconstruction of held-out views of the two scenes outside the stage stays within 0.5 dB of what it was
    from conftest import tiny_autoencoder_config

    from latent_triplane_ns.ae_training import load_collection_images
    from latent_triplane_ns.evaluation import psnr_from_mse

    warmup, fit, joint = 300, 40, 20
    trainer = stage1_trainer(
        tiny_collection,
        tmp_path,
        steps=warmup + fit + joint,
        ae_warmup_steps=warmup,
        ray_steps=fit,
        joint_steps=joint,
        joint_encode_mode="sample",
        autoencoder=tiny_autoencoder_config(block_out_channels=(8, 8, 8)),
    )
    trainer.train()
    images = load_collection_images(tiny_collection, "test", (2, 4), 4)

    def held_out_psnr(folder: str) -> float:
        ae = read_basis_checkpoint(trainer.base_dir / folder).build_autoencoder().eval()
        with torch.no_grad():
            return float(psnr_from_mse(((ae.decode(ae.encode(images, mode="mean")) - images) ** 2).mean()))

    before, after = held_out_psnr("basis_before_joint"), held_out_psnr("basis")
    flat = float(psnr_from_mse(((images - images.mean(dim=(0, 2, 3), keepdim=True)) ** 2).mean()))
    assert before > flat + 3.0  # the warm-up trained it: well above each image replaced by the mean colour
    assert after >= before - 0.5, (before, after)
    print(f"held-out reconstruction {before:.2f} dB before the joint phase, {after:.2f} dB after")
