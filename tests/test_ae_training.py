"""Training the compact autoencoder from scratch, and the folder `ltn-train-ae` writes."""

from __future__ import annotations

import json

import pytest
import torch

from latent_triplane_ns.ae_training import AETrainingConfig, reconstruction_psnr, train_autoencoder
from latent_triplane_ns.autoencoder import LATENT_STATS_FILE, AutoencoderConfig, LatentAutoencoder, build_compact_vae
from latent_triplane_ns.scripts.train_ae import TrainAutoencoder, load_collection_images

TINY = dict(block_out_channels=(8, 8, 8, 8), latent_channels=4)


def test_training_raises_held_out_psnr_and_keeps_the_best(tiny_collection):
    train = load_collection_images(tiny_collection, "train")
    held_out = load_collection_images(tiny_collection, "test")
    assert train.shape == (24, 3, 32, 32) and held_out.shape == (8, 3, 32, 32)
    torch.manual_seed(0)
    before = reconstruction_psnr(build_compact_vae(TINY["block_out_channels"], 4, 1), held_out)
    config = AETrainingConfig(**TINY, max_steps=60, eval_every_seconds=0.0, lr=5e-3, precision="fp32")
    vae, result = train_autoencoder(config, train, held_out)
    assert result.steps == 60 and len(result.curve) == 60
    assert result.eval_psnr > before + 3
    assert result.eval_psnr == reconstruction_psnr(vae, held_out)
    # the best measured weights are the ones kept (the progress subset is all 8 held-out images here)
    assert max(c["eval_psnr"] for c in result.curve) == pytest.approx(result.eval_psnr, abs=1e-3)
    assert not any(p.requires_grad for p in vae.parameters())


def test_cli_writes_a_loadable_autoencoder_with_its_statistics(tiny_collection, tmp_path):
    out = tmp_path / "ae"
    TrainAutoencoder(
        data=tiny_collection, output_dir=out, training=AETrainingConfig(**TINY, max_steps=5), device="cpu"
    ).main()
    stats = json.loads((out / LATENT_STATS_FILE).read_text())
    log = json.loads((out / "ltn_ae_training.json").read_text())
    assert log["steps"] == 5 and log["num_train_images"] == 24 and log["curve"]
    ae = LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=out))
    assert ae.norm_shift.tolist() == stats["shift"] and ae.norm_scale.tolist() == stats["scale"]
    latents = ae.encode(load_collection_images(tiny_collection, "train")[:4])
    # one standard deviation maps to tanh(0.5): the normalised latents spread around 0.5 without saturating
    assert 0.3 < float(latents.mean()) < 0.7 and 0.05 < float(latents.std()) < 0.35
