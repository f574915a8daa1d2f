"""Training the compact autoencoder from scratch, and the folder `ltn-train-ae` writes."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from latent_triplane_ns.ae_training import (
    TRAINING_LOG_FILE,
    AETrainingConfig,
    autoencoder_losses,
    describe_training,
    learning_rate,
    load_collection_images,
    load_collections_images,
    one_off_seconds,
    read_training_summary,
    reconstruction_psnr,
    train_and_save_autoencoder,
    train_autoencoder,
)
from latent_triplane_ns.atomic import NotOurFolderError
from latent_triplane_ns.autoencoder import (
    LATENT_STATS_FILE,
    AutoencoderConfig,
    CompactAEConfig,
    LatentAutoencoder,
    load_pretrained_vae,
)
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.scripts.train_ae import TrainAutoencoder

TINY = CompactAEConfig(block_out_channels=(8, 8, 8, 8), latent_channels=4)


def held_out_psnr_by_hand(vae, images) -> float:
    """Mean over images of 10 log10(1 / MSE) of D(mean E(x)) on [0, 1], computed without the package's helpers."""
    with torch.no_grad():
        recon = (vae.decode(vae.encode(images * 2 - 1).latent_dist.mean).sample.clamp(-1, 1) + 1) / 2
    mse = ((recon - images) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse)).mean())


def test_recipe_is_the_mse_on_the_minus_one_to_one_scale():
    torch.manual_seed(0)
    vae = TINY.build()
    images = torch.rand(2, 3, 16, 16)
    torch.manual_seed(5)
    mse, kl = autoencoder_losses(vae, images)
    torch.manual_seed(5)
    posterior = vae.encode(images * 2 - 1).latent_dist
    recon = vae.decode(posterior.sample()).sample
    assert float(mse) == pytest.approx(float(((recon - (images * 2 - 1)) ** 2).mean()), rel=1e-6)
    assert float(kl) == pytest.approx(float(posterior.kl().mean()), rel=1e-6)


def test_training_raises_held_out_psnr_and_keeps_the_best(tiny_collection):
    train = load_collection_images(tiny_collection, "train")
    held_out = load_collection_images(tiny_collection, "test")
    assert train.shape == (24, 3, 32, 32) and held_out.shape == (8, 3, 32, 32)
    torch.manual_seed(0)
    before = held_out_psnr_by_hand(TINY.build(), held_out)
    config = AETrainingConfig(
        architecture=TINY, crop_size=None, max_steps=60, eval_every_seconds=0.0, lr=5e-3, precision="fp32"
    )
    vae, result = train_autoencoder(config, train, held_out)
    assert result.steps == 60 and len(result.curve) == 60
    after = held_out_psnr_by_hand(vae, held_out)
    assert after > before + 3
    assert result.eval_psnr == pytest.approx(after, abs=1e-3)
    # the best measured weights are the ones kept (the progress subset is all 8 held-out images here)
    assert max(c["eval_psnr"] for c in result.curve) == pytest.approx(after, abs=1e-3)
    assert not any(p.requires_grad for p in vae.parameters())
    assert reconstruction_psnr(vae, held_out[:1]) == pytest.approx(held_out_psnr_by_hand(vae, held_out[:1]), abs=1e-3)


def test_cli_writes_a_loadable_autoencoder_with_its_statistics(tiny_collection, tmp_path):
    out = tmp_path / "ae"
    TrainAutoencoder(
        data=(tiny_collection,),
        output_dir=out,
        training=AETrainingConfig(architecture=TINY, crop_size=None, max_steps=5),
        device="cpu",
    ).main()
    stats = json.loads((out / LATENT_STATS_FILE).read_text())
    log = json.loads((out / TRAINING_LOG_FILE).read_text())
    assert log["steps"] == 5 and log["num_train_images"] == 24 and log["curve"]
    ae = LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=out))
    assert ae.norm_shift.tolist() == stats["shift"] and ae.norm_scale.tolist() == stats["scale"]
    latents = ae.encode(load_collection_images(tiny_collection, "train")[:4])
    # one standard deviation maps to tanh(0.5): the normalised latents spread around 0.5 without saturating
    assert 0.3 < float(latents.mean()) < 0.7 and 0.05 < float(latents.std()) < 0.35


def test_cli_replaces_its_own_folder_but_never_someone_elses(tiny_collection, tmp_path):
    training = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=2)
    out = tmp_path / "ae"
    TrainAutoencoder(data=(tiny_collection,), output_dir=out, training=training, device="cpu").main()
    first = (out / "diffusion_pytorch_model.safetensors").read_bytes()
    training.seed = 1
    TrainAutoencoder(data=(tiny_collection,), output_dir=out, training=training, device="cpu").main()
    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() != first  # an earlier autoencoder: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae"]  # no temporary or old folder left beside it

    theirs = tmp_path / "outputs"
    (theirs / "run").mkdir(parents=True)
    (theirs / "run" / "notes.txt").write_text("keep me")
    with pytest.raises(NotOurFolderError, match="refusing to replace it"):
        TrainAutoencoder(data=(tiny_collection,), output_dir=theirs, training=training, device="cpu").main()
    assert (theirs / "run" / "notes.txt").read_text() == "keep me"


def test_the_learning_rate_decays_with_whichever_budget_runs_out_first(tiny_collection):
    # a 6-second budget with the default 100,000-step cap: the clock must set the decay's progress
    by_time = AETrainingConfig(architecture=TINY, crop_size=None, lr=1e-3, max_minutes=0.1)
    assert learning_rate(by_time, 1000, 0.0) == pytest.approx(1e-3, rel=1e-3)
    # 90% of the time budget gone: 0.05 + 0.95 * (1 + cos(0.9 pi)) / 2 = 0.073248 of the peak
    assert learning_rate(by_time, 1000, 5.4) == pytest.approx(1e-3 * 0.073248, rel=1e-4)
    by_steps = AETrainingConfig(architecture=TINY, crop_size=None, lr=1e-3, max_minutes=60.0, max_steps=2000)
    assert learning_rate(by_steps, 1000, 5.4) == pytest.approx(1e-3 * 0.525, rel=1e-3)  # half the steps: cos(pi/2)
    assert learning_rate(by_steps, 9, 0.0) == pytest.approx(1e-3 * 10 / 50, rel=1e-3)  # warm-up: 50 steps

    # and a real time-budgeted run does decay: its last steps run near the floor of 5% (with the old progress,
    # min(time, steps), the rate only ever rose: the last step had the highest rate)
    train = load_collection_images(tiny_collection, "train")[:8]
    rates = []
    config = AETrainingConfig(
        architecture=TINY, crop_size=None, lr=1e-3, max_minutes=0.1, eval_every_seconds=60.0, batch_size=2
    )
    train_autoencoder(config, train, train[:2], on_progress=lambda record: rates.append(record["lr"]))
    assert len(rates) > 10 and max(rates) > 0.3e-3 and rates[-1] < 0.25 * max(rates)


def test_several_collections_are_learnt_together_and_must_share_one_image_size(tiny_collection, tmp_path):
    from latent_triplane_ns.procedural import generate_collection

    furniture = tmp_path / "furniture"
    generate_collection(
        furniture,
        family="furniture",
        num_scenes=2,
        seed=3,
        image_size=32,
        num_train_views=3,
        num_test_views=1,
        workers=1,
        show_progress=False,
    )
    out = tmp_path / "ae"
    training = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=2)
    TrainAutoencoder(data=(tiny_collection, furniture), output_dir=out, training=training, device="cpu").main()
    log = json.loads((out / TRAINING_LOG_FILE).read_text())
    # 4 cars x 6 views + 2 pieces of furniture x 3 views; 4 x 2 + 2 x 1 held out
    assert (log["num_train_images"], log["num_eval_images"]) == (30, 10)
    assert log["data"] == "cars + furniture"
    both = load_collections_images([tiny_collection, furniture], "test", None, 1)
    assert torch.equal(both[8:], load_collection_images(furniture, "test"))  # in the order given

    larger = tmp_path / "larger"
    generate_collection(larger, num_scenes=1, image_size=40, num_train_views=2, num_test_views=1, show_progress=False)
    with pytest.raises(InputError, match=r"larger: its train images are 40x40 px, those of .*cars 32x32 px"):
        TrainAutoencoder(data=(tiny_collection, larger), output_dir=tmp_path / "ae2", training=training).main()
    assert not (tmp_path / "ae2").exists()


def test_ltn_eval_ae_reports_each_collections_held_out_reconstruction(tiny_collection, tmp_path):
    from latent_triplane_ns.procedural import generate_collection
    from latent_triplane_ns.scripts.eval_ae import EvalAutoencoder

    toys = tmp_path / "toys"
    generate_collection(
        toys,
        family="toys",
        num_scenes=2,
        seed=3,
        image_size=32,
        num_train_views=2,
        num_test_views=3,
        workers=1,
        show_progress=False,
    )
    out = tmp_path / "ae"
    TrainAutoencoder(
        data=(tiny_collection,),
        output_dir=out,
        training=AETrainingConfig(architecture=TINY, crop_size=None, max_steps=3),
    ).main()
    report = tmp_path / "eval" / "reconstruction.json"
    rows = EvalAutoencoder(data=(tiny_collection, toys), autoencoder=out, output=report).main()
    vae = load_pretrained_vae(out)
    by_hand = [
        held_out_psnr_by_hand(vae, load_collection_images(tiny_collection, "test")),
        held_out_psnr_by_hand(vae, load_collection_images(toys, "test")),
    ]
    assert [row["views"] for row in rows] == [8, 6]
    assert [row["psnr"] for row in rows] == pytest.approx(by_hand, abs=1e-3)
    # the views it learnt from: the same figure its training log recorded for the weights it kept
    assert rows[0]["psnr"] == pytest.approx(json.loads((out / TRAINING_LOG_FILE).read_text())["eval_psnr"], abs=1e-3)
    assert json.loads(report.read_text())["rows"] == rows


def test_images_whose_sides_are_not_multiples_of_the_factor_are_cropped(tmp_path):
    from latent_triplane_ns.procedural import generate_collection

    odd = tmp_path / "odd"
    generate_collection(odd, num_scenes=1, image_size=36, num_train_views=2, num_test_views=1, show_progress=False)
    out = tmp_path / "ae"
    training = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=2)
    TrainAutoencoder(data=(odd,), output_dir=out, training=training, device="cpu").main()  # 36 px: cropped to 32
    assert json.loads((out / TRAINING_LOG_FILE).read_text())["steps"] == 2
    full = load_collection_images(odd, "train")
    cropped = load_collection_images(odd, "train", multiple_of=8)
    assert full.shape[-2:] == (36, 36) and cropped.shape[-2:] == (32, 32)
    assert torch.equal(cropped, full[..., :32, :32])  # the top-left, as ns-train crops


@pytest.mark.parametrize("ema_decay, equivariance_weight", [(None, 0.0), (0.9, 0.5)])
def test_a_run_resumed_from_a_checkpoint_continues_exactly(tiny_collection, ema_decay, equivariance_weight):
    import io

    train = load_collection_images(tiny_collection, "train")[:8]
    held_out = load_collection_images(tiny_collection, "test")[:4]
    config = AETrainingConfig(
        architecture=TINY,
        crop_size=None,
        max_steps=8,
        batch_size=2,
        eval_every_seconds=0.0,
        checkpoint_every_seconds=0.0,
        precision="fp32",
        max_minutes=60.0,
        ema_decay=ema_decay,
        equivariance_weight=equivariance_weight,
    )
    saved = {}

    def keep(state):  # a deep copy, as the file on disk is
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved[state["step"]] = buffer.getvalue()

    whole, whole_result = train_autoencoder(config, train, held_out, save_checkpoint=keep)
    assert sorted(saved) == list(range(1, 9))  # one checkpoint after every step with a cadence of 0
    state = torch.load(io.BytesIO(saved[3]), weights_only=True)
    resumed, result = train_autoencoder(config, train, held_out, resume=state)
    assert result.steps == 8 and result.resumed == [{"step": 3, "seconds": pytest.approx(state["seconds"], abs=1e-3)}]
    assert [c["step"] for c in result.curve] == [c["step"] for c in whole_result.curve] == list(range(1, 9))
    # same batches, same posterior draws, same learning rates, same best weights: the same autoencoder
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.eval_psnr == whole_result.eval_psnr


def test_an_unfinished_run_is_resumed_refused_or_started_over_by_its_work_folder(tiny_collection, tmp_path):
    from latent_triplane_ns.ae_training import CHECKPOINT_FILE, UnfinishedRunError, work_folder
    from latent_triplane_ns.autoencoder import AutoencoderError

    out = tmp_path / "ae"
    partial = work_folder(out)
    assert partial == tmp_path / "ae.partial"
    training = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=3, checkpoint_every_seconds=0.0)

    def stop_after_two(record):
        if record["step"] == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):  # stands for a kill: the process ends after step 2
        train_and_save_autoencoder(training, tiny_collection, out, on_progress=stop_after_two)
    assert not out.exists() and (partial / CHECKPOINT_FILE).is_file()
    # the work folder is never an autoencoder: loading it fails, naming what is missing
    with pytest.raises(AutoencoderError, match=r"ae\.partial/config\.json: missing"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=partial))
    # other settings: refused, naming the folder and what differs; nothing is touched
    other = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=3, lr=1e-3)
    with pytest.raises(
        UnfinishedRunError, match=r"ae\.partial: holds an unfinished ltn-train-ae run .*lr: 0\.002 there"
    ):
        TrainAutoencoder(data=(tiny_collection,), output_dir=out, training=other, device="cpu").main()
    assert (partial / CHECKPOINT_FILE).is_file() and not out.exists()
    # the same settings (a longer budget is allowed): resumed from step 2, and the work folder goes once it is done
    lines = []
    training.max_steps = 4
    log = train_and_save_autoencoder(training, tiny_collection, out, on_message=lines.append)
    assert len(lines) == 2 and lines[0].startswith("autoencoder resumed from step 2 (")
    assert lines[1] == "autoencoder trained: measuring its reconstruction (8 held-out views) and latent statistics"
    assert lines[0].endswith(f"s of training) of the unfinished run in {partial}")
    assert log["steps"] == 4 and [r["step"] for r in log["resumed"]] == [2]
    assert json.loads((out / TRAINING_LOG_FILE).read_text())["resumed"][0]["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae"]
    # other settings with --start-over: the unfinished run is discarded and training starts from step 0
    with pytest.raises(RuntimeError, match="killed"):
        train_and_save_autoencoder(training, tiny_collection, out, on_progress=stop_after_two)
    TrainAutoencoder(data=(tiny_collection,), output_dir=out, training=other, device="cpu", start_over=True).main()
    assert json.loads((out / TRAINING_LOG_FILE).read_text())["resumed"] == [] and not partial.exists()


def test_a_work_folder_this_program_did_not_write_is_never_touched(tiny_collection, tmp_path):
    out = tmp_path / "ae"
    theirs = tmp_path / "ae.partial"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    training = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=1)
    for start_over in (False, True):
        with pytest.raises(NotOurFolderError, match=r"ae\.partial: exists and is a folder this program did not write"):
            TrainAutoencoder(
                data=(tiny_collection,), output_dir=out, training=training, device="cpu", start_over=start_over
            ).main()
    assert (theirs / "notes.txt").read_text() == "keep me" and not out.exists()


def test_an_autoencoder_tiny_trains_through_encode_and_decode_and_loads_back(tiny_collection, tmp_path, capfd):
    from latent_triplane_ns.autoencoder import autoencoder_from_record, autoencoder_record
    from latent_triplane_ns.benchmark.autoencoders import variant_architecture

    tiny = CompactAEConfig(kind="tiny", block_out_channels=(8, 8, 8, 8), latent_channels=4)
    assert variant_architecture("f8c4w8t") == CompactAEConfig(
        kind="tiny", block_out_channels=(16, 16, 16, 16), latent_channels=4
    )
    with pytest.raises(InputError, match="one width at every level"):
        CompactAEConfig(kind="tiny", block_out_channels=(8, 16, 16, 16)).build()
    train = load_collection_images(tiny_collection, "train")
    held_out = load_collection_images(tiny_collection, "test")
    torch.manual_seed(0)
    vae = tiny.build()
    assert type(vae).__name__ == "AutoencoderTiny"

    def by_hand(model) -> float:  # through encode and decode: AutoencoderTiny's forward quantises the latents
        with torch.no_grad():
            recon = (model.decode(model.encode(held_out * 2 - 1).latents).sample.clamp(-1, 1) + 1) / 2
        return float((10 * torch.log10(1 / ((recon - held_out) ** 2).mean(dim=(1, 2, 3)))).mean())

    mse, kl = autoencoder_losses(vae, train[:2])
    x = train[:2] * 2 - 1
    assert float(kl) == 0.0  # a deterministic latent has no KL term
    assert float(mse) == pytest.approx(float(((vae.decode(vae.encode(x).latents).sample - x) ** 2).mean()), rel=1e-5)
    before = by_hand(vae)
    config = AETrainingConfig(
        architecture=tiny, crop_size=None, max_steps=60, eval_every_seconds=0.0, lr=5e-3, precision="fp32"
    )
    trained, result = train_autoencoder(config, train, held_out)
    assert by_hand(trained) > before + 3 and result.eval_psnr == pytest.approx(by_hand(trained), abs=1e-3)

    train_and_save_autoencoder(config, tiny_collection, tmp_path / "tiny")
    loaded = LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path / "tiny"))
    assert type(loaded.vae).__name__ == "AutoencoderTiny" and loaded.downsample_factor == 8
    images = held_out[:2]
    latents = loaded.encode(images)
    assert latents.shape == (2, 4, 4, 4) and ((latents > 0) & (latents < 1)).all()
    assert loaded.decode(latents).shape == (2, 3, 32, 32)
    rebuilt = autoencoder_from_record(autoencoder_record(loaded))  # as ns-viewer does when the folder has moved
    assert type(rebuilt.vae).__name__ == "AutoencoderTiny"
    assert "not expected" not in capfd.readouterr().err  # diffusers' note on its own config key is silenced


def test_the_object_weighted_loss_and_the_object_psnr_by_hand():
    from types import SimpleNamespace

    from latent_triplane_ns.ae_training import autoencoder_losses, object_mask, object_psnr

    class HalfDecoder(torch.nn.Module):
        """encode: the image itself as a deterministic latent; decode: half of it."""

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(()))

        def encode(self, x):
            return SimpleNamespace(latents=x)

        def decode(self, z):
            return SimpleNamespace(sample=0.5 * z)

    images = torch.ones(1, 3, 2, 2)
    images[0, :, 1, 1] = torch.tensor([0.5, 0.0, 0.0])  # one red-ish object pixel on white
    assert object_mask(images).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    # on [-1, 1]: white is 1 and decodes to 0.5 (error 0.25 per channel); the object pixel (0, -1, -1) decodes to
    # (0, -0.5, -0.5): errors 0, 0.25, 0.25, mean 1/6
    plain, kl = autoencoder_losses(HalfDecoder(), images)
    assert float(plain) == pytest.approx((3 * 0.25 + 1 / 6) / 4) and float(kl) == 0.0
    weighted, _ = autoencoder_losses(HalfDecoder(), images, object_weight=10.0)
    assert float(weighted) == pytest.approx((3 * 0.25 + 10 / 6) / 13)
    # object pixels only, on [0, 1]: decoded (0.5, 0.25, 0.25) against (0.5, 0, 0): MSE 1/24
    assert object_psnr(HalfDecoder(), images) == pytest.approx(10 * math.log10(24), abs=1e-4)


class PoolingAutoencoder:
    """Encoder: 4x4 average pooling; decoder: 4x nearest upsampling. Exact on images made of constant 8x8 blocks,
    and it commutes with quarter turns and with halving: a perfectly equivariant autoencoder."""

    def encode(self, x):
        return SimpleNamespace(latents=torch.nn.functional.avg_pool2d(x, 4))

    def decode(self, z):
        return SimpleNamespace(sample=torch.nn.functional.interpolate(z, scale_factor=4, mode="nearest"))


def test_the_equivariance_loss_is_zero_for_an_equivariant_autoencoder_and_not_otherwise():
    from latent_triplane_ns.ae_training import random_transform, training_losses

    torch.manual_seed(0)
    blocks = torch.nn.functional.interpolate(torch.rand(2, 3, 2, 2), scale_factor=8, mode="nearest")  # 16 px
    noisy = torch.rand(2, 3, 16, 16)
    seen = set()
    for seed in range(12):
        transform = random_transform(torch.Generator().manual_seed(seed))
        moved_z, moved_images = transform(torch.zeros(2, 4, 4, 4), blocks)
        halved = moved_images.shape[-1] == 8
        seen.add(halved)
        assert moved_z.shape == ((2, 4, 2, 2) if halved else (2, 4, 4, 4))
        assert not torch.equal(moved_images, blocks)  # a quarter turn at least: never the identity
        mse, kl, equivariance = training_losses(PoolingAutoencoder(), blocks, transform=transform)
        assert float(kl) == 0.0  # a deterministic latent
        assert float(mse) == pytest.approx(0.0, abs=1e-10) and float(equivariance) == pytest.approx(0.0, abs=1e-10)
        # on noise the decoder's own error shows, and it is the same error after a quarter turn
        mse, _, equivariance = training_losses(PoolingAutoencoder(), noisy, transform=transform)
        assert float(mse) > 0.01 and float(equivariance) > 0.01
        if not halved:
            assert float(equivariance) == pytest.approx(float(mse), rel=1e-5)
    assert seen == {True, False}
    assert training_losses(PoolingAutoencoder(), blocks)[2] is None


def test_the_moving_average_warms_up_its_decay_by_hand():
    from latent_triplane_ns.ae_training import ema_average

    average = ema_average(0.99)
    old, new = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    # after 1 update the rate is min(0.99, 2 / 11): 2/11 of the old average, 9/11 of the new weights
    assert torch.allclose(average(old, new, torch.tensor(1)), old * 2 / 11 + new * 9 / 11)
    # after 1000 updates the warm-up (1001 / 1010) is past the decay, which then rules
    assert torch.allclose(average(old, new, torch.tensor(1000)), old * 0.99 + new * 0.01)


def test_an_ema_of_decay_zero_is_the_raw_training(tiny_collection):
    train = load_collection_images(tiny_collection, "train")[:8]
    held_out = load_collection_images(tiny_collection, "test")[:4]

    def trained(steps, ema_decay=None):
        config = AETrainingConfig(
            architecture=TINY,
            crop_size=None,
            max_steps=steps,
            batch_size=2,
            eval_every_seconds=0.0,
            precision="fp32",
            max_minutes=60.0,
            ema_decay=ema_decay,
        )
        return train_autoencoder(config, train, held_out)

    (raw, raw_result), (zero, zero_result) = trained(4), trained(4, ema_decay=0.0)
    _, smooth_result = trained(4, ema_decay=0.99)
    # a decay of 0 averages nothing: the same measurements, the same best weights
    assert [c["eval_psnr"] for c in zero_result.curve] == [c["eval_psnr"] for c in raw_result.curve]
    for name, weights in raw.state_dict().items():
        assert torch.equal(zero.state_dict()[name], weights), name
    # a real average measures other weights than the raw ones from its second update on
    assert smooth_result.curve[0]["eval_psnr"] == raw_result.curve[0]["eval_psnr"]
    assert smooth_result.curve[1]["eval_psnr"] != raw_result.curve[1]["eval_psnr"]


def test_a_crop_larger_than_the_images_is_refused_before_training(tiny_collection, tmp_path):
    out = tmp_path / "ae"
    training = AETrainingConfig(architecture=TINY, crop_size=64, max_steps=2)
    with pytest.raises(
        InputError, match=r"images are 32x32 px, smaller than the autoencoder training's crop_size of 64"
    ):
        TrainAutoencoder(data=(tiny_collection,), output_dir=out, training=training, device="cpu").main()
    assert not out.exists() and not (tmp_path / "ae.partial").exists()


def test_start_from_fine_tunes_an_autoencoders_own_weights_and_architecture(tiny_collection, tmp_path):
    first = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=30, lr=5e-3, precision="fp32")
    train_and_save_autoencoder(first, tiny_collection, tmp_path / "first")
    # another architecture named: the folder's own is used, and its weights are where training starts
    still = AETrainingConfig(start_from=tmp_path / "first", crop_size=None, max_steps=1, lr=1e-12, precision="fp32")
    train_and_save_autoencoder(still, tiny_collection, tmp_path / "still")
    assert json.loads((tmp_path / "still" / TRAINING_LOG_FILE).read_text())["settings"]["start_from"] == str(
        tmp_path / "first"
    )
    weights = [
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path / name)).vae.state_dict()
        for name in ("first", "still")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.allclose(weights[0][k].float(), weights[1][k].float(), atol=1e-6) for k in weights[0])
    # the one-off cost of the weights counts the training they started from
    first_log = json.loads((tmp_path / "first" / TRAINING_LOG_FILE).read_text())
    summary = read_training_summary(tmp_path / "still")
    assert summary["start_from_training"]["steps"] == 30 and summary["steps"] == 1
    assert one_off_seconds(summary) == pytest.approx(first_log["seconds"] + summary["seconds"])
    line = describe_training(summary)
    assert f"fine-tuned from first (itself trained by ltn-train-ae for {first_log['seconds'] / 60:.1f} min (30 " in line
    assert f"{(first_log['seconds'] + summary['seconds']) / 60:.1f} min in all" in line
    fresh = AETrainingConfig(architecture=TINY, crop_size=None, max_steps=1, lr=1e-12, precision="fp32")
    train_and_save_autoencoder(fresh, tiny_collection, tmp_path / "fresh")
    assert read_training_summary(tmp_path / "fresh")["start_from_training"] is None
    other = LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path / "fresh")).vae
    assert not all(torch.allclose(weights[0][k].float(), v.float(), atol=1e-6) for k, v in other.state_dict().items())
