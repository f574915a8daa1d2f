"""Latent Tri-Plane model: renders latent images of many scenes and decodes them to RGB for every nerfstudio tool."""

from __future__ import annotations

import os
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerDropdown
from torch import Tensor
from torch.nn import Parameter
from torchmetrics.image import StructuralSimilarityIndexMeasure

from latent_triplane_ns import basis as basis_io
from latent_triplane_ns.autoencoder import (
    AutoencoderConfig,
    LatentAutoencoder,
    autoencoder_from_record,
    autoencoder_record,
    decoder_last_block_parameters,
)
from latent_triplane_ns.backgrounds import (
    BackgroundMode,
    SceneBackgrounds,
    check_color,
    check_random_colors,
    disagreements,
    random_palette,
    scene_colors,
)
from latent_triplane_ns.errors import InputError, MissingInputError
from latent_triplane_ns.evaluation import image_psnr, psnr_from_mse
from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField, plane_tv
from latent_triplane_ns.masks import masked_mse
from latent_triplane_ns.renderers import LatentRenderer

SCENE_ENV = "LTN_SCENE"
"""Environment variable naming the scene (folder name or index) drawn for cameras that carry none: what
`ns-render spiral/interpolate/camera-path` and the viewer show first, e.g. `LTN_SCENE=scene_00012 ns-render ...`."""
LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"
"""torchvision's AlexNet weights that torchmetrics' LPIPS loads; LPIPS is computed only when they are local."""


@dataclass
class LatentTriplaneModelConfig(ModelConfig):
    """Micro-Macro Tri-Planes rendered in an autoencoder's latent space (C=3 and the identity AE: RGB Tri-Planes)."""

    _target: Type = field(default_factory=lambda: LatentTriplaneModel)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    """The autoencoder (ignored when a basis checkpoint is given: the basis brings its own)."""
    basis_checkpoint: Optional[Path] = None
    """Basis checkpoint directory (global basis, MLP, autoencoder, normalisation) to learn new scenes against. Its
    sizes become the field's: plane_resolution, micro_features, macro_features, num_basis and mlp_hidden_width are
    taken from it."""
    allow_incomplete_basis: bool = False
    """Learn against a basis checkpoint whose run had not finished (killed, or still training); refused otherwise."""
    load_basis_scenes: bool = False
    """Also start the scenes whose folder names are in the basis's collection from the planes it stored (to
    re-render or continue the basis's own scenes); otherwise every scene starts fresh."""
    shared_training: Literal["auto", "train", "frozen"] = "auto"
    """Whether the basis and the MLP are optimised; 'auto' freezes them when a basis checkpoint is loaded."""
    plane_resolution: int = 64
    """Side of every plane."""
    micro_features: int = 10
    """F_mic: per-scene features per plane."""
    macro_features: int = 22
    """F_mac: features per plane of the shared basis (0 together with num_basis=0 for per-scene planes only)."""
    num_basis: int = 50
    """M: number of shared basis plane sets."""
    plane_init_scale: float = 0.1
    """Standard deviation of the planes' initial values."""
    mlp_hidden_width: int = 64
    """Hidden width of the tiny MLP shared by all scenes."""
    mlp_implementation: Literal["auto", "tcnn", "torch"] = "auto"
    """'auto': tiny-cuda-nn's fused MLP when it imports, PyTorch otherwise."""
    num_coarse_samples: int = 48
    """Stratified samples per ray."""
    num_importance_samples: int = 48
    """Samples per ray drawn from the coarse weights, merged with the coarse ones."""
    latent_loss_mult: float = 1.0
    """Weight of the MSE between rendered and encoded latents."""
    tv_loss_mult: float = 1e-3
    """Weight of the total variation of the planes, averaged over the scenes in the batch. Like the latent loss (a
    mean over the batch's rays), it then does not grow with the scenes per batch, and ranks that average their
    gradients compute what one process holding all their scenes would. (The paper sums 1e-4 x TV over its batch;
    1e-3 averaged over a batch of 10 scenes is the same.)"""
    ray_steps: Optional[int] = None
    """Training steps that fit the scenes to the cached latents by rays before the decoder steps begin, plus
    `ray_steps_per_scene` for each scene. From that step to the end of the run every step is a decoder step:
    `decoder_views_per_step` training views (or windows of them: `decoder_patch_size`) are rendered at latent
    resolution, decoded, and compared with their images, MSE(D(render), image), as IG-AE does; the scenes' planes and
    the autoencoder's decoder, shared by every scene, learn from it together with the latent and TV losses. None: ray
    steps only, and the decoder stays as the basis checkpoint or the autoencoder folder gives it."""
    ray_steps_per_scene: int = 0
    """Ray steps added to `ray_steps` for every scene of the run: the decoder steps begin at step ray_steps +
    ray_steps_per_scene x scenes, so that each scene gets as many ray steps however many scenes share the run (a
    scene-parallel run counts the scenes of its largest shard, so that its ranks switch at the same step). 0:
    `ray_steps` alone."""
    decoder_views_per_step: int = 4
    """Training views rendered and decoded per decoder step."""
    decoder_patch_size: Optional[int] = 16
    """Side, in latent pixels, of the random square window of each view that a decoder step renders and decodes (its
    image is the matching window of the training image, `downsample_factor` times larger); None, or a side at least
    the latent's: whole views. A window of half the latent's side costs a quarter of the rays and decoded pixels of a
    whole view."""
    decoder_trainable: Literal["all", "last_block"] = "all"
    """Which of the autoencoder decoder's parameters the decoder steps train: all of them, or only its last up-block
    and output layers (`decoder_last_block_parameters`); the layers before still pass the decode loss's gradient on
    to the planes, without computing gradients of their own weights."""
    decoder_ae_loss_mult: float = 0.0
    """Weight of MSE(D(E(image)), image) in the decoder steps, which keeps the decoder a decoder of the encoder's
    latents (the encoder itself stays frozen); 0: off."""
    background: BackgroundMode = "border"
    """What lies behind each scene's object, where rays leave the scene box: 'white', 'black', 'color'
    (`background_color`), 'border' (each scene's colour, the median of its training views' border pixels), or
    'learned' (a per-scene latent that training moves, starting from the border colour), or 'random' (nerfstudio's
    random background for scenes whose views have alpha: each training ray gets a random colour behind both its render
    and its target pixel, any colour for the identity autoencoder, or one of `random_colors` colours or the scene's
    own for an autoencoder; scenes without alpha, evaluation and rendering use the border colour). Views with alpha are
    composited over the scene's colour (for 'border', 'learned' and 'random', over the dataparser's alpha colour); the
    latent methods render the encoding of the colour, and decoder steps see the scene's colour."""
    background_color: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    """RGB, each in [0, 1]: the background of every scene with background 'color'."""
    random_colors: int = 4
    """With background 'random' and an autoencoder: how many random colours the training views are also composited
    over, each encoded once into its own copy of the latent cache (the colours are the same in every run)."""
    collider_params: Optional[Dict[str, float]] = field(default_factory=lambda: {"near_plane": 1.0, "far_plane": 4.2})
    """Near and far distances of every ray (the default suits cameras at radius 2.6 around a [-1, 1]^3 object)."""
    restore: Optional[Dict[str, Any]] = None
    """Written into the run's config.yml when training starts (by `LatentTrainer.setup`), not set by hand: the
    autoencoder's architecture and settings. When the basis checkpoint or the autoencoder folder has since moved or been deleted, ns-viewer,
    ns-render and ns-eval rebuild the model from it and take every weight from the run's nerfstudio checkpoint."""


class LatentTriplaneModel(Model):
    """Renders C-channel latent images of any scene of a collection and decodes them with the autoencoder.

    Args:
        config: the model settings.
    """

    config: LatentTriplaneModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        # the scene box as a buffer, so that it follows the model to its device (SceneBox is not a module)
        self.register_buffer("aabb", self.scene_box.aabb.clone(), persistent=False)
        metadata = self.kwargs.get("metadata") or {}
        self.scene_names: List[str] = list(metadata.get("scene_names") or ["scene"])
        num_scenes = len(self.scene_names)
        config = self.config
        self.missing_source = self._missing_source() if config.restore is not None else None
        """A file the model was built from that is gone; the weights it held must come from a checkpoint."""
        loaded = None
        if self.missing_source is not None:
            self.autoencoder = autoencoder_from_record(config.restore["autoencoder"])
        elif config.basis_checkpoint is not None:
            loaded = basis_io.read_basis_checkpoint(config.basis_checkpoint)
            if not config.allow_incomplete_basis:
                loaded.check_complete()
            adopted = loaded.fit_config(config)
            if adopted:
                CONSOLE.print(f"Field sizes from the basis {config.basis_checkpoint}: {', '.join(adopted)}")
            named = self._named_autoencoder()
            if named is not None:
                loaded.check_autoencoder(named)
                CONSOLE.print(
                    f"The basis brings its own autoencoder (fine-tuned with it in stage 1); {named} is not used."
                )
            self.autoencoder = loaded.build_autoencoder()
        else:
            self.autoencoder = LatentAutoencoder(config.autoencoder)
        triplanes = MicroMacroTriplanes(
            num_scenes,
            config.plane_resolution,
            config.micro_features,
            config.macro_features,
            config.num_basis,
            config.plane_init_scale,
        )
        self.field = TriplaneField(
            triplanes, self.autoencoder.latent_channels, config.mlp_hidden_width, config.mlp_implementation
        )
        if config.background == "color":
            check_color(config.background_color, "--pipeline.model.background-color")
        borders = metadata.get("scene_borders")
        # background 'random' with an autoencoder: a palette (the identity autoencoder draws any colour instead)
        palette = config.background == "random" and self.autoencoder.vae is not None
        if palette:
            check_random_colors(config.random_colors)
        self.backgrounds = SceneBackgrounds(
            scene_colors(config.background, config.background_color, borders, num_scenes),
            self.autoencoder.latent_channels,
            learned=config.background == "learned",
            palette=random_palette(config.random_colors) if palette else None,
        )
        self.backgrounds.refresh(self.autoencoder, initialise=True)
        if borders is not None:  # a model built from its data: say where the views disagree with the setting
            for line in disagreements(config.background, self.backgrounds.colors, borders, self.scene_names):
                CONSOLE.log(f"[bold yellow]Background: {line}")
        if loaded is not None:
            started = loaded.load_into(self.field, self.scene_names if config.load_basis_scenes else [])
            if config.load_basis_scenes:
                CONSOLE.log(f"{len(started)} of {num_scenes} scenes start from the planes stored in the basis")
        shared = config.shared_training
        self.train_shared = shared == "train" or (shared == "auto" and config.basis_checkpoint is None)
        if self.has_decoder_steps and self.autoencoder.vae is None:
            raise InputError(
                "ray_steps starts decoder steps, which fine-tune an autoencoder's decoder: autoencoder.source "
                "'identity' has none (set --pipeline.model.ray-steps None)"
            )
        if self.has_decoder_steps:
            trained = {id(p) for p in self.trained_decoder_parameters()}
            for param in self.autoencoder_parts()["decoder"]:
                param.requires_grad_(id(param) in trained)
        if not self.train_shared:  # frozen: no gradients computed for them at all
            triplanes.basis.requires_grad_(False)
            self.field.mlp.requires_grad_(False)
        self.sampler_uniform = UniformSampler(num_samples=config.num_coarse_samples, single_jitter=False)
        self.sampler_pdf = PDFSampler(num_samples=config.num_importance_samples, include_original=True)
        self.renderer_latent = LatentRenderer()
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self._lpips: list = []  # built lazily, unregistered, only when its weights are local
        self.viewer_scene: Optional[int] = None
        """Scene drawn for cameras that carry no scene index (the viewer's, rendered camera paths)."""
        chosen = os.environ.get(SCENE_ENV)
        if chosen:
            self.viewer_scene = self._scene_named(chosen)
        self._step_kind: Optional[str] = None
        """What the last training step did (`step_kind`), for the log line where it changes."""
        self.last_latent_image: Optional[Tensor] = None
        """All C channels (h, w, C) of the latent image of the last `get_outputs_for_camera` call."""
        self.scene_dropdown = ViewerDropdown(
            name="Scene",
            default_value=self.scene_names[self.viewer_scene or 0],
            options=self.scene_names,
            cb_hook=lambda element: self.select_scene(element.value),
        )

    def _named_autoencoder(self) -> Optional[Path]:
        """The autoencoder folder the config names besides its basis checkpoint, if any: a pretrained one given by path
        (the shipped one, the default, is not a choice the user made)."""
        if self.config.autoencoder.source != "pretrained":
            return None
        named = self.config.autoencoder.named_folder()
        return None if named is None else named[0] / (named[1] or "")

    def _missing_source(self) -> Optional[Path]:
        """The first file of the basis checkpoint or autoencoder folder that this model reads and that is gone."""
        config = self.config
        if config.basis_checkpoint is not None:
            return basis_io.missing_file(Path(config.basis_checkpoint))
        if config.autoencoder.source == "pretrained" and config.autoencoder.pretrained_path is not None:
            root = Path(config.autoencoder.pretrained_path) / (config.autoencoder.subfolder or "")
            return None if (root / "config.json").is_file() else root / "config.json"
        return None

    def restore_record(self) -> Dict[str, Any]:
        """The `restore` entry of this model's config (see `LatentTriplaneModelConfig.restore`)."""
        return {"autoencoder": autoencoder_record(self.autoencoder)}

    def check_weights_loaded(self) -> None:
        """Raises when the model was rebuilt without a missing file and no checkpoint has given it the weights."""
        if self.missing_source is not None:
            raise MissingInputError(
                f"{self.missing_source}: missing, and no checkpoint of this run has been loaded to take its weights "
                "from (put the file back, or load the run's checkpoint: ns-viewer/ns-render/ns-eval --load-config, or "
                "ns-train <method> --load-dir <run>/nerfstudio_models with the run's flags; ns-train --load-config "
                "ignores --load-dir)"
            )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        # checkpoints of earlier versions hold the autoencoder's fixed background latent, now the scenes' backgrounds
        state_dict = {k: v for k, v in state_dict.items() if k != "autoencoder.background_latent"}
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.missing_source = None  # every weight now comes from the checkpoint
        self.backgrounds.refresh(self.autoencoder)  # the encoding of the colours by the autoencoder just loaded
        return result

    def _scene_named(self, chosen: str) -> int:
        """Index of a scene given by folder name or by index (the value of LTN_SCENE)."""
        if chosen in self.scene_names:
            return self.scene_names.index(chosen)
        if chosen.isdigit() and int(chosen) < len(self.scene_names):
            return int(chosen)
        shown = ", ".join(self.scene_names[:5]) + (", ..." if len(self.scene_names) > 5 else "")
        raise InputError(
            f"{SCENE_ENV}={chosen!r} is not a scene of this run: give a folder name ({shown}) "
            f"or an index below {len(self.scene_names)}"
        )

    def select_scene(self, name: str) -> None:
        """Scene rendered for cameras that carry no scene index (the viewer's)."""
        self.viewer_scene = self.scene_names.index(name)

    def autoencoder_parts(self) -> Dict[str, List[Parameter]]:
        """The autoencoder's parameters as the optimizer groups `encoder` and `decoder`."""
        vae = self.autoencoder.vae

        def around(name: str) -> List[Parameter]:  # AutoencoderKL's 1x1 convolutions; AutoencoderTiny has none
            module = getattr(vae, name, None)
            return list(module.parameters()) if module is not None else []

        encoder = list(vae.encoder.parameters()) + around("quant_conv")
        decoder = list(vae.decoder.parameters()) + around("post_quant_conv")
        return {"encoder": encoder, "decoder": decoder}

    def trained_decoder_parameters(self) -> List[Parameter]:
        """The decoder's parameters that decoder steps train (`decoder_trainable`)."""
        if self.config.decoder_trainable == "last_block":
            return decoder_last_block_parameters(self.autoencoder.vae.decoder)
        return self.autoencoder_parts()["decoder"]

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        planes = self.field.triplanes
        groups = {"micro_planes": [planes.micro]}
        if self.has_decoder_steps:
            groups["decoder"] = self.trained_decoder_parameters()
        if planes.num_basis > 0:
            groups["basis_weights"] = [planes.weights]
        if self.backgrounds.learned is not None:
            groups["backgrounds"] = [self.backgrounds.learned]
        if self.train_shared:
            if planes.num_basis > 0:
                groups["basis"] = [planes.basis]
            groups["mlp"] = list(self.field.mlp.parameters())
        return groups

    @property
    def has_decoder_steps(self) -> bool:
        """Whether some step of the run may be a decoder step (`ray_steps` set): the decoder then trains."""
        return self.config.ray_steps is not None

    @property
    def first_decoder_step(self) -> Optional[int]:
        """The step the decoder steps begin at: `ray_steps` plus `ray_steps_per_scene` for each of the model's scenes;
        None without decoder steps."""
        config = self.config
        if config.ray_steps is None:
            return None
        return config.ray_steps + config.ray_steps_per_scene * len(self.scene_names)

    def is_decoder_step(self, step: int) -> bool:
        """Whether training step `step` is a decoder step (rendered views decoded) rather than a ray step."""
        return self.first_decoder_step is not None and step >= self.first_decoder_step

    PER_SCENE_GROUPS = ("micro_planes", "basis_weights", "backgrounds")
    """Parameter groups that hold one row per scene (never shared between ranks); every other group is shared."""
    PER_SCENE_PARAMETERS = ("field.triplanes.micro", "field.triplanes.weights", "backgrounds.learned")
    """State-dict keys of the per-scene parameters, whose first dimension indexes the scenes (the learned
    backgrounds only with background 'learned')."""

    def scene_of_rays(self, ray_bundle: RayBundle) -> Tensor:
        """Scene index (n,) of each ray: its camera's, or the viewer's choice for cameras without one."""
        n = ray_bundle.origins.shape[:-1].numel()
        metadata = ray_bundle.metadata or {}
        if "scene_index" in metadata:
            return metadata["scene_index"].reshape(n).long()
        default = self.viewer_scene or 0
        return torch.full((n,), default, dtype=torch.long, device=ray_bundle.origins.device)

    def normalized_positions(self, positions: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
        """World-space positions -> [-1, 1]^3 over the scene box, on the model's device."""
        return SceneBox.get_normalized_positions(positions, self.aabb) * 2.0 - 1.0

    def _field_at(self, positions: Tensor, scenes: Tensor) -> Dict[str, Tensor]:
        """Field outputs at sample positions (rays, samples, 3) in world space, each ray in its scene."""
        return self.field(self.normalized_positions(positions), scenes)

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:  # type: ignore[override]
        self.check_weights_loaded()
        shape = ray_bundle.origins.shape[:-1]
        flat = ray_bundle.flatten() if len(shape) != 1 else ray_bundle
        scenes = self.scene_of_rays(flat)
        metadata = flat.metadata or {}  # background 'random': each training ray's palette colour, or its own colour
        choice, color = metadata.get("background_choice"), metadata.get("background_color")
        coarse = self.sampler_uniform(flat)
        with torch.no_grad():
            coarse_density = self._field_at(coarse.frustums.get_positions(), scenes)["density"]
            coarse_weights = coarse.get_weights(coarse_density)
        samples = self.sampler_pdf(flat, coarse, coarse_weights)
        field_out = self._field_at(samples.frustums.get_positions(), scenes)
        weights = samples.get_weights(field_out["density"])
        outputs = {
            "latent": self.renderer_latent(
                field_out["colors"], weights, self.backgrounds.of_rays(scenes, choice, color)
            ),
            "accumulation": self.renderer_accumulation(weights),
            "depth": self.renderer_depth(weights, samples),
            "scene_index": scenes.unsqueeze(-1).float(),
        }
        return {k: v.reshape(*shape, -1) for k, v in outputs.items()}

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        mse = masked_mse(outputs["latent"], batch["latent"].to(outputs["latent"]), batch.get("mask"))
        return {"latent_psnr": psnr_from_mse(mse.detach())}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        latent_loss = masked_mse(outputs["latent"], batch["latent"].to(outputs["latent"]), batch.get("mask"))
        if not torch.isfinite(latent_loss):
            raise FloatingPointError(
                "latent loss is not finite: lower the learning rates, or check the latents for NaN"
            )
        loss_dict = {"latent_loss": self.config.latent_loss_mult * latent_loss}
        if self.config.tv_loss_mult > 0:
            loss_dict["tv_loss"] = self.tv_loss(outputs["scene_index"])
        return loss_dict

    def decode_loss(
        self,
        rendered: Float[Tensor, "V h w C"],
        images: Float[Tensor, "V H W 3"],
        masks: Optional[Float[Tensor, "V H W 1"]] = None,
    ) -> Tensor:
        """MSE(D(render), image) of views (or windows) rendered at latent resolution, over the pixels that `masks`
        keep; gradients reach D and the scenes."""
        ae = self.autoencoder
        decoded = ae.decode_raw(ae.denormalize(rendered.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return masked_mse(decoded, images.to(decoded), masks)

    def decoder_loss_dict(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The losses of a decoder step: latent and TV (as every step), decode, and the decoder's own reconstruction.

        Args:
            outputs: the model's outputs for rays of shape (V, h, w).
            batch: `image` (V, H, W, 3) in [0, 1] and its encoded `latent` (V, h, w, C); where the views have masks,
                `image_mask` (V, H, W, 1) and `mask` (V, h, w, 1), the pixels' loss weights.
        """
        losses = self.get_loss_dict(outputs, batch)
        losses["dec_loss"] = self.decode_loss(outputs["latent"], batch["image"], batch.get("image_mask"))
        if self.config.decoder_ae_loss_mult > 0:
            ae = self.autoencoder
            x = batch["image"].permute(0, 3, 1, 2)
            with torch.no_grad():
                z = ae.encode_raw(x, mode="mean")
            losses["ae_loss"] = self.config.decoder_ae_loss_mult * F.mse_loss(ae.decode_raw(z), x)
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"{name} is not finite in a decoder step: lower the decoder's learning rate")
        return losses

    def tv_loss(self, scene_index: Tensor) -> Tensor:
        """The weighted total variation of the planes of the scenes present in a batch, averaged over those scenes."""
        scenes = torch.unique(scene_index.long())
        return self.config.tv_loss_mult * plane_tv(self.field.triplanes.planes(scenes)) / len(scenes)

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        trainer = training_callback_attributes.trainer
        callbacks = [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self.announce_step_kind)]
        if not (self.train_shared and self.field.triplanes.num_basis > 0 and trainer is not None):
            return callbacks

        def export(step: int, complete: bool = False) -> None:
            if step > 0 or complete:
                basis_io.write_basis_checkpoint(self, Path(trainer.base_dir) / "basis", step, complete)

        steps = trainer.config.steps_per_save
        return [
            *callbacks,
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], export, update_every_num_iters=steps),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], lambda step: export(step + 1, complete=True)),
        ]

    def step_kind(self, step: int) -> str:
        """What training step `step` does, as the log names it."""
        return "decoder steps" if self.is_decoder_step(step) else "ray steps"

    def announce_step_kind(self, step: int) -> None:
        """Logs the kind of step from the first step of the run and wherever it changes."""
        kind = self.step_kind(step)
        if kind != self._step_kind:
            CONSOLE.log(f"step {step}: {kind}")
            self._step_kind = kind

    @torch.no_grad()
    def render_latent_image(self, camera: Cameras, obb_box=None) -> Dict[str, Tensor]:
        """Renders a camera's latent image at 1/f resolution (f the AE's downsampling): `latent` (h, w, C), `depth`
        and `accumulation` (h, w, 1), with h = ceil(H/f) and w = ceil(W/f)."""
        latent_camera = deepcopy(camera)
        latent_camera.rescale_output_resolution(1.0 / self.autoencoder.downsample_factor, scale_rounding_mode="ceil")
        ray_bundle = latent_camera.generate_rays(camera_indices=0, keep_shape=True, obb_box=obb_box)
        if camera.metadata is None or "scene_index" not in camera.metadata:
            ray_bundle.metadata.pop("scene_index", None)
        return self.get_outputs_for_camera_ray_bundle(ray_bundle)

    @torch.no_grad()
    def decode_latent_image(self, latent: Float[Tensor, "h w C"], height: int, width: int) -> Float[Tensor, "H W 3"]:
        """Decodes a latent image with the autoencoder and crops the RGB image at the top-left to H x W."""
        return self.autoencoder.decode(latent.permute(2, 0, 1)[None])[0].permute(1, 2, 0)[:height, :width]

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> Dict[str, Tensor]:
        """Renders the latent image at 1/f resolution (f the AE's downsampling) and decodes it to full resolution.

        Any output size works: the latent image is ceil(H/f) x ceil(W/f), it decodes to f times that, and the
        decoded image is cropped at the top-left to H x W (latent pixel j covers RGB pixels f*j .. f*j+f-1).
        """
        height, width = int(camera.height[0]), int(camera.width[0])
        factor = self.autoencoder.downsample_factor
        outputs = self.render_latent_image(camera, obb_box)
        latent = outputs["latent"]
        rgb = self.decode_latent_image(latent, height, width)

        def upsample(image: Tensor) -> Tensor:
            up = image.repeat_interleave(factor, dim=0).repeat_interleave(factor, dim=1)
            return up[:height, :width]

        # All C channels stay out of the outputs (the viewer offers every output, and its PCA colormap for more than
        # 3 channels fails on a uniform background); the image metrics read them from here.
        self.last_latent_image = latent
        return {
            "rgb": rgb,
            "latent": upsample(latent[..., :3]),
            "depth": upsample(outputs["depth"]),
            "accumulation": upsample(outputs["accumulation"]),
        }

    def _lpips_metric(self):
        if not self._lpips:
            weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_WEIGHTS
            if not weights.is_file():
                return None
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self._lpips.append(LearnedPerceptualImagePatchSimilarity(normalize=True).to(self.device))
        return self._lpips[0]

    @staticmethod
    def cropped_pair(
        render: Float[Tensor, "H W 3"], image: Float[Tensor, "H2 W2 C"]
    ) -> Tuple[Float[Tensor, "h w 3"], Float[Tensor, "h w 3"]]:
        """A decoded render and its ground truth (RGB), both cropped to the size they share."""
        image = image.to(render.device)[..., :3]
        height, width = min(image.shape[0], render.shape[0]), min(image.shape[1], render.shape[1])
        return render[:height, :width], image[:height, :width]

    def rgb_metrics(
        self, pred: Float[Tensor, "H W 3"], gt: Float[Tensor, "H W 3"], lpips: bool = False
    ) -> Dict[str, float]:
        """PSNR and SSIM of a decoded render against its ground truth (and LPIPS, when asked and its weights are
        local)."""
        pred_chw, gt_chw = pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None]
        metrics = {"psnr": image_psnr(pred, gt), "ssim": float(self.ssim(pred_chw, gt_chw))}
        metric = self._lpips_metric() if lpips else None
        if metric is not None:
            metrics["lpips"] = float(metric(pred_chw, gt_chw))
        return metrics

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """RGB PSNR/SSIM (and LPIPS when its weights are local) of the decoded render, the latent PSNR, and the
        autoencoder's own reconstruction PSNR on the same view (the ceiling of a fit decoded by a decoder that
        was not fine-tuned on renders)."""
        pred, gt = self.cropped_pair(outputs["rgb"], batch["image"])
        height, width = gt.shape[:2]
        metrics = self.rgb_metrics(pred, gt, lpips=True)
        images = {"img": torch.cat([gt, pred], dim=1)}
        if "latent" in batch:
            target = batch["latent"].to(self.device)
            rendered = self.last_latent_image
            if rendered is not None and rendered.shape == target.shape:
                metrics["latent_psnr"] = image_psnr(rendered, target)
            recon = self.autoencoder.decode(target.permute(2, 0, 1)[None])[0].permute(1, 2, 0)[:height, :width]
            metrics["ae_psnr"] = image_psnr(recon, gt)
            images["ae_reconstruction"] = recon
        images["depth"] = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images["accumulation"] = colormaps.apply_colormap(outputs["accumulation"])
        return metrics, images
