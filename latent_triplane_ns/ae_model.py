"""3D-aware autoencoder stage (paper section 3.3): the AE is trained jointly with the scenes' Tri-Planes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from torch.nn import Parameter

from latent_triplane_ns.ae_training import autoencoder_losses
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.model import LatentTriplaneModel, LatentTriplaneModelConfig

Phase = Literal["warmup", "fit", "joint", "decoder"]
ENCODER_PHASES: Tuple[Phase, ...] = ("warmup", "joint")
"""The phases that train the encoder: latents encoded during them go stale."""


@dataclass
class LatentTriplaneAEModelConfig(LatentTriplaneModelConfig):
    """Stage 1, in phases: an AE warm-up (a compact autoencoder from scratch only), the fit (scenes, basis and MLP
    fitted by rays to the frozen autoencoder's latents), the joint phase (AE, basis and scenes trained together), then
    the decoder phase (the decoder fine-tuned on the scenes' rendered views) to the end of the run."""

    _target: Type = field(default_factory=lambda: LatentTriplaneAEModel)
    ae_warmup_steps: int = 2000
    """Steps of plain autoencoder training first; only for a 'compact' autoencoder (any other skips it)."""
    ray_steps: Optional[int] = 2000
    """Steps of the fit phase, after the warm-up: the autoencoder frozen, every scene's planes, the basis and the MLP
    fitted by rays to the cached latents. Then come `joint_steps` of the joint phase, then the decoder phase to the end
    of the run: stage 2's decoder steps run on the basis scenes (the shared decoder, planes, basis and MLP learn
    MSE(D(render), image) with the encoder frozen), so that new scenes are decoded by a decoder that has already
    learned to decode rendered latents. None: the fit lasts the whole run."""
    joint_steps: int = 0
    """Steps of the joint phase (the paper's 3D-aware training of the autoencoder with the scenes), between the fit and
    the decoder phase; 0: the autoencoder's encoder stays as it came."""
    ae_batch_size: int = 8
    """Images per warm-up step."""
    views_per_step: int = 4
    """Whole views rendered at latent resolution and decoded per joint step."""
    joint_encode_mode: Literal["mean", "sample"] = "sample"
    """Latent target E(x) of the joint phase: a posterior draw (the paper's) or its mean."""
    enc_loss_mult: float = 1.0
    """Weight of the latent loss MSE(normalised E(x), render) in the joint phase (gradients reach E)."""
    enc_grad_scale: float = 4e-4
    """Multiplier of the latent loss's gradient that reaches the encoder (the loss's value is unchanged); 1 is the
    whole gradient, 0 stops it, so that only the autoencoder loss trains the encoder. The default is the official
    normaliser's share: it takes that loss on tanh(0.02 z), about 0.02^2 of a loss on unit-scale latents."""
    dec_loss_mult: float = 1.0
    """Weight of the decode loss MSE(D(render), x) in the joint phase (gradients reach D and the scene)."""
    ae_loss_mult: float = 0.1
    """Weight of the autoencoder loss MSE(D(E(x)), x) in the joint phase."""
    kl_loss_mult: float = 1e-6
    """Weight of the posterior's KL term during the warm-up."""
    joint_lr_scale: Dict[str, float] = field(
        default_factory=lambda: {"micro_planes": 0.1, "mlp": 0.1, "encoder": 0.05, "decoder": 0.05}
    )
    """Multiplier of a parameter group's learning rate in the joint phase (the paper drops planes and MLP from
    1e-2 to 1e-3 and trains E and D at 1e-4); groups not listed keep their rate."""
    decoder_lr_scale: Dict[str, float] = field(default_factory=lambda: {"decoder": 0.5})
    """Multiplier of a parameter group's learning rate in the decoder phase; groups not listed keep their rate. The
    default gives the decoder stage 2's decoder rate, 1e-3."""


def scale_gradient(x: Float[Tensor, "*shape"], scale: float) -> Float[Tensor, "*shape"]:
    """`x` in value, its gradient times `scale` in the backward pass (0: detached).

    Examples:
        >>> x = torch.ones(2, requires_grad=True); (3.0 * scale_gradient(x, 0.5)).sum().backward(); x.grad.tolist()
        [1.5, 1.5]
    """
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return x.detach() + scale * (x - x.detach())


class LatentTriplaneAEModel(LatentTriplaneModel):
    """Latent Tri-Planes whose autoencoder is trained with the scenes, making its latent space 3D-aware."""

    config: LatentTriplaneAEModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        if self.autoencoder.vae is None:
            raise InputError("latent-triplane-ae trains an autoencoder: autoencoder.source cannot be 'identity'")
        if self.config.ray_steps_per_scene:
            raise InputError(
                "latent-triplane-ae counts its phases in steps: give the fit phase's length as ray_steps "
                "(ray_steps_per_scene must be 0)"
            )
        if self.config.decoder_trainable != "all":
            raise InputError(
                "latent-triplane-ae's decoder phase trains the whole decoder: decoder_trainable must be 'all'"
            )

    @property
    def warmup_steps(self) -> int:
        """Steps of the warm-up: only a compact autoencoder trained from scratch has one."""
        return self.config.ae_warmup_steps if self.config.autoencoder.source == "compact" else 0

    def phase_at(self, step: int) -> Phase:
        """The phase of training step `step`."""
        config = self.config
        if step < self.warmup_steps:
            return "warmup"
        if config.ray_steps is None or step < self.warmup_steps + config.ray_steps:
            return "fit"
        if step < self.warmup_steps + config.ray_steps + config.joint_steps:
            return "joint"
        return "decoder"

    def is_decoder_step(self, step: int) -> bool:
        return self.phase_at(step) == "decoder"

    def step_kind(self, step: int) -> str:
        return f"the {self.phase_at(step)} phase"

    def scene_parameters(self) -> List[Parameter]:
        planes = self.field.triplanes
        return [planes.micro, planes.weights, planes.basis, *self.field.mlp.parameters()]

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        return {**super().get_param_groups(), **self.autoencoder_parts()}

    def set_trainable(self, phase: Phase) -> None:
        """Flips `requires_grad` for a phase: warm-up trains the AE only, fit the scenes only, joint everything, the
        decoder phase everything but the encoder."""
        train_scenes = phase in ("fit", "joint", "decoder")
        for part, params in self.autoencoder_parts().items():
            trains = phase in ENCODER_PHASES or (phase == "decoder" and part == "decoder")
            for param in params:
                param.requires_grad_(trains)
        for param in self.scene_parameters():
            param.requires_grad_(train_scenes)

    def warmup_loss_dict(self, images: Float[Tensor, "B H W 3"]) -> Dict[str, Tensor]:
        """The warm-up's losses: the compact autoencoder's recipe (`ae_training.autoencoder_losses`), the same as
        `ltn-train-ae`'s: reconstruction MSE on the [-1, 1] scale plus the weighted KL term."""
        mse, kl = autoencoder_losses(self.autoencoder.vae, images.permute(0, 3, 1, 2))
        return {"ae_loss": mse, "kl_loss": self.config.kl_loss_mult * kl}

    def joint_loss_dict(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The paper's phase-2 losses on whole views: latent, decode, autoencoder, plane TV.

        Args:
            outputs: the model's outputs for rays of shape (V, h, w): `latent` (V, h, w, C), `scene_index`.
            batch: `image` (V, H, W, 3) in [0, 1], and `image_mask` (V, H, W, 1) where the views have masks (the
                decode loss is taken over the pixels it keeps).
        """
        ae = self.autoencoder
        x = batch["image"].permute(0, 3, 1, 2)
        rendered = outputs["latent"].permute(0, 3, 1, 2)
        z = ae.encode_raw(x, mode=self.config.joint_encode_mode)
        target = scale_gradient(ae.normalize(z), self.config.enc_grad_scale)
        losses = {
            "enc_loss": self.config.enc_loss_mult * F.mse_loss(rendered, target),
            "dec_loss": self.config.dec_loss_mult
            * self.decode_loss(outputs["latent"], batch["image"], batch.get("image_mask")),
            "ae_loss": self.config.ae_loss_mult * F.mse_loss(ae.decode_raw(z), x),
        }
        if self.config.tv_loss_mult > 0:
            losses["tv_loss"] = self.tv_loss(outputs["scene_index"])
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"{name} is not finite in the joint phase: lower the learning rates")
        return losses
