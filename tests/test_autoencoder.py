"""Autoencoder wrapper: normalisation, shapes, local loading with clear errors, fingerprints."""

import json

import pytest
import torch

from latent_triplane_ns.autoencoder import (
    LATENT_STATS_FILE,
    AutoencoderConfig,
    AutoencoderError,
    CompactAEConfig,
    LatentAutoencoder,
    decoder_last_block_parameters,
)


def tiny_ae(**kwargs):
    torch.manual_seed(0)
    compact = CompactAEConfig(block_out_channels=(8, 8), latent_channels=4)
    return LatentAutoencoder(AutoencoderConfig(source="compact", compact=compact, **kwargs))


def test_tanh_normalisation_by_hand_and_round_trip():
    ae = tiny_ae(tanh_scale=(0.5,), tanh_shift=(1.0,))
    z = torch.tensor([1.0, 3.0, -1.0, 5.0]).view(1, 4, 1, 1)
    y = ae.normalize(z)
    # 0.5 (tanh(0.5 (z - 1)) + 1): tanh(0) = 0, tanh(1) = 0.76159416, tanh(-1) = -0.76159416, tanh(2) = 0.96402758
    assert y.view(-1).tolist() == pytest.approx([0.5, 0.88079708, 0.11920292, 0.98201379], abs=1e-7)
    assert torch.allclose(ae.denormalize(y), z, atol=1e-4)
    # the clip of the inverse: a saturated value maps back to the largest recoverable latent, 1 + atanh(1 - 1e-4) / 0.5
    assert float(ae.denormalize(torch.ones(1, 4, 1, 1))[0, 0]) == pytest.approx(1.0 + 9.903438, abs=1e-3)


def test_compact_shapes_and_ranges():
    ae = tiny_ae()
    assert ae.downsample_factor == 2 and ae.latent_channels == 4
    images = torch.rand(2, 3, 16, 24)
    latents = ae.encode(images)
    assert latents.shape == (2, 4, 8, 12)
    assert ((latents > 0) & (latents < 1)).all()
    decoded = ae.decode(latents)
    assert decoded.shape == (2, 3, 16, 24)
    assert (decoded >= 0).all() and (decoded <= 1).all()
    assert ae.color_latents(torch.ones(2, 3)).shape == (2, 4)
    with pytest.raises(AutoencoderError, match="not a multiple"):
        ae.encode(torch.rand(1, 3, 15, 16))


@pytest.mark.parametrize(
    "kind, prefixes, count",
    [
        # diffusers' Decoder of 3 levels: up_blocks 0-2, the last without an upsampler, then the output norm and conv
        ("kl", ("up_blocks.2.", "conv_norm_out.", "conv_out."), None),
        # AutoencoderTiny's decoder of 3 levels, one Sequential: conv, ReLU, block, Upsample (3), conv, block,
        # Upsample (6), conv (7: 8 x 8 x 3 x 3 + 0 = 576), block (8: 1,752), conv_out (9: 8 x 3 x 3 x 3 + 3 = 219)
        ("tiny", ("layers.7.", "layers.8.", "layers.9."), 576 + 1752 + 219),
    ],
)
def test_the_decoders_last_block_is_what_follows_its_last_upsampling(kind, prefixes, count):
    torch.manual_seed(0)
    decoder = CompactAEConfig(kind=kind, block_out_channels=(8, 8, 8), latent_channels=4).build().decoder
    names = {id(p): n for n, p in decoder.named_parameters()}
    chosen = decoder_last_block_parameters(decoder)
    assert len({id(p) for p in chosen}) == len(chosen)
    assert {names[id(p)] for p in chosen} == {n for n in names.values() if n.startswith(prefixes)}
    assert 0 < sum(p.numel() for p in chosen) < sum(p.numel() for p in decoder.parameters())
    if count is not None:
        assert sum(p.numel() for p in chosen) == count


def test_identity_is_rgb():
    ae = LatentAutoencoder(AutoencoderConfig(source="identity"))
    images = torch.rand(1, 3, 5, 7)
    assert ae.downsample_factor == 1 and ae.latent_channels == 3
    assert torch.equal(ae.encode(images), images)
    assert torch.equal(ae.decode(images), images)
    assert ae.color_latents(torch.tensor([[1.0, 0.5, 0.0]])).tolist() == [[1.0, 0.5, 0.0]]


def test_pretrained_directory_round_trip_and_stats(tmp_path):
    ae = tiny_ae()
    ae.vae.save_pretrained(str(tmp_path / "vae"))
    (tmp_path / "vae" / LATENT_STATS_FILE).write_text(json.dumps({"shift": [0.1] * 4, "scale": [2.0] * 4}))
    loaded = LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path, subfolder="vae"))
    assert loaded.norm_scale.tolist() == [2.0] * 4
    images = torch.rand(1, 3, 8, 8)
    assert torch.allclose(loaded.encode_raw(images), ae.encode_raw(images), atol=1e-6)
    assert loaded.fingerprint() != ae.fingerprint()  # other normalisation: other latents


def test_bad_pretrained_directories_name_the_file(tmp_path):
    with pytest.raises(AutoencoderError, match="does not exist"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path / "nope"))
    with pytest.raises(AutoencoderError, match="config.json: missing"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(AutoencoderError, match="not an AutoencoderKL"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path))
    with pytest.raises(AutoencoderError, match="no autoencoder.pretrained-path"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained"))


def test_fingerprint_follows_weights():
    a, b = tiny_ae(), tiny_ae()
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        next(b.vae.parameters()).add_(1e-3)
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"shift": [0.0] * 3, "scale": [1.0] * 3}), "'shift' has 3 values, the autoencoder beside it has 4"),
        (json.dumps({"shift": [0.0] * 4}), "'scale' must be a list of numbers"),
    ],
)
def test_a_bad_latent_statistics_file_is_named(tmp_path, content, message):
    tiny_ae().vae.save_pretrained(str(tmp_path))
    (tmp_path / LATENT_STATS_FILE).write_text(content)
    with pytest.raises(AutoencoderError, match=f"{LATENT_STATS_FILE}: {message}"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path=tmp_path))


def test_a_hub_id_offline_fails_at_once_with_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so that the id is no local folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = AutoencoderConfig(source="pretrained", pretrained_path="stabilityai/sd-vae-ft-mse")
    with pytest.raises(AutoencoderError, match=r"stabilityai/sd-vae-ft-mse: not a local folder, and as a hub id"):
        LatentAutoencoder(config)
    # a relative path that merely does not exist is not taken for a hub id
    with pytest.raises(AutoencoderError, match="missing_dir: autoencoder directory does not exist"):
        LatentAutoencoder(AutoencoderConfig(source="pretrained", pretrained_path="missing_dir"))
