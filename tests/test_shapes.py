"""The public tensor functions' jaxtyping shapes, enforced at run time by a shape checker (jaxtyping + beartype)."""

from __future__ import annotations

import inspect
import types

import pytest
import torch
from conftest import tiny_autoencoder_config

beartype = pytest.importorskip("beartype").beartype
from jaxtyping import TypeCheckError, jaxtyped  # noqa: E402

from latent_triplane_ns import ae_training, evaluation  # noqa: E402
from latent_triplane_ns.autoencoder import LatentAutoencoder  # noqa: E402
from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField, plane_tv  # noqa: E402
from latent_triplane_ns.model import LatentTriplaneModel  # noqa: E402
from latent_triplane_ns.renderers import LatentRenderer  # noqa: E402


def checked(function):
    """`function` with its annotations enforced: every dimension name must mean one size within a call. Decorators
    such as `torch.no_grad` are looked through (their wrapper would hide the annotations from the checker)."""
    if isinstance(function, types.MethodType):
        return types.MethodType(checked(function.__func__), function.__self__)
    return jaxtyped(typechecker=beartype)(inspect.unwrap(function))


@pytest.fixture(scope="module")
def autoencoder():
    torch.manual_seed(0)
    return LatentAutoencoder(tiny_autoencoder_config())


def test_autoencoder_shapes(autoencoder):
    images = torch.rand(2, 3, 16, 24)
    latents = checked(autoencoder.encode)(images)
    assert latents.shape == (2, 4, 2, 3)
    assert checked(autoencoder.decode)(latents).shape == (2, 3, 16, 24)
    assert checked(autoencoder.denormalize)(checked(autoencoder.normalize)(latents)).shape == latents.shape
    assert checked(autoencoder.color_latents)(torch.ones(2, 3)).shape == (2, 4)
    with pytest.raises(TypeCheckError):
        checked(autoencoder.encode)(torch.rand(3, 16, 24))  # no batch dimension
    with pytest.raises(TypeCheckError):
        checked(autoencoder.encode)(torch.rand(2, 4, 16, 24))  # four colour channels


def test_training_function_shapes(autoencoder):
    images = torch.rand(2, 3, 16, 16)
    mse, kl = checked(ae_training.autoencoder_losses)(autoencoder.vae, images)
    assert mse.shape == kl.shape == ()
    assert isinstance(checked(ae_training.reconstruction_psnr)(autoencoder.vae, images), float)
    stats = checked(ae_training.latent_statistics)(autoencoder.vae, images)
    assert len(stats["shift"]) == len(stats["scale"]) == 4
    with pytest.raises(TypeCheckError):
        checked(ae_training.reconstruction_psnr)(autoencoder.vae, images[0])


def test_field_renderer_and_metric_shapes():
    planes = MicroMacroTriplanes(3, 4, 2, 3, 2)
    field = TriplaneField(planes, out_channels=4, hidden_width=8, implementation="torch")
    fused = checked(planes.planes)(torch.tensor([0, 2]))
    assert fused.shape == (2, 3, 5, 4, 4)
    assert checked(plane_tv)(fused).shape == ()
    out = checked(field.forward)(torch.rand(5, 7, 3) * 2 - 1, torch.tensor([0, 1, 2, 0, 1]))
    assert out["density"].shape == (5, 7, 1) and out["colors"].shape == (5, 7, 4)
    with pytest.raises(TypeCheckError):
        checked(field.forward)(torch.rand(5, 7, 3), torch.tensor([0, 1]))  # 5 rays, 2 scene indices
    rendered = checked(LatentRenderer().forward)(out["colors"], torch.rand(5, 7, 1) / 7, torch.zeros(4))
    assert rendered.shape == (5, 4)
    with pytest.raises(TypeCheckError):
        checked(LatentRenderer().forward)(out["colors"], torch.rand(5, 7, 1), torch.zeros(3))  # C = 4 vs 3
    assert checked(evaluation.image_psnr)(torch.zeros(4, 4, 3), torch.full((4, 4, 3), 0.1)) == pytest.approx(20.0)
    with pytest.raises(TypeCheckError):
        checked(evaluation.image_psnr)(torch.zeros(4, 4, 3), torch.zeros(4, 5, 3))
    render, truth = checked(LatentTriplaneModel.cropped_pair)(torch.rand(8, 8, 3), torch.rand(6, 9, 4))
    assert render.shape == truth.shape == (6, 8, 3)
