"""Settings of a benchmark run: the compared methods, field sizes, budgets, and the toy, cpu and gpu presets."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Dict, Literal, Optional, Tuple

from latent_triplane_ns.ae_training import AETrainingConfig
from latent_triplane_ns.autoencoder import CompactAEConfig

METHOD_LABELS: Dict[str, str] = {
    "triplane-rgb": "triplane-rgb (baseline)",
    "latent-micro": "latent-triplane, per-scene planes only",
    "latent-micro-macro": "latent-triplane, Micro-Macro",
}
"""The compared methods, the baseline first: report keys and their labels."""
PAPER = {
    "time_reduction": 0.86,
    "memory_reduction": 0.44,
    "scenes": 1000,
    "psnr_db": 28.0,
    "setting": "ShapeNet cars, 128 px, NVIDIA L4/A100",
}
"""The paper's headline figures (arXiv 2403.11678, abstract), shown beside ours."""

NEVER = 10**9
"""A step interval nerfstudio's trainer never reaches (its own evaluations and checkpoints are switched off)."""


@dataclass
class FieldSizes:
    """Tri-Plane field sizes shared by every method, so the methods differ only in what the paper compares."""

    plane_resolution: int
    """Side of every plane."""
    micro_features: int
    """F_mic: per-scene features of Micro-Macro; triplane-rgb and per-scene-only planes get F_mic + F_mac."""
    macro_features: int
    """F_mac: features of every basis plane."""
    num_basis: int
    """M: basis plane sets."""
    mlp_hidden_width: int
    """Hidden width of the tiny MLP."""
    num_coarse_samples: int
    """Stratified samples per ray."""
    num_importance_samples: int
    """Importance samples per ray."""

    @property
    def num_features(self) -> int:
        return self.micro_features + self.macro_features

    @classmethod
    def of_method(cls, method: str) -> FieldSizes:
        """The sizes of a registered method's preset."""
        model = preset_config(method).pipeline.model
        return cls(**{f.name: getattr(model, f.name) for f in fields(cls)})


def preset_config(method: str):
    """A copy of a registered method's TrainerConfig."""
    import copy

    from nerfstudio.configs.method_configs import all_methods

    if method not in all_methods:
        raise ValueError(f"{method!r} is not a registered nerfstudio method (is latent-triplane-ns installed?)")
    return copy.deepcopy(all_methods[method])


@dataclass
class BenchmarkConfig:
    """Sizes, budgets and outputs of one benchmark run. The methods are the registered presets, run as they are but for
    the budgets, the data and the sizes of the comparison. The defaults are the 'cpu' preset: the whole run,
    generation and the basis stage included, fits 40 minutes on 2 cores (the run prints its estimate first), starting
    from the shipped autoencoder; the field is latent-triplane-small's."""

    preset: Literal["toy", "cpu", "gpu"] = "cpu"
    """Preset the other defaults come from (read first; every other setting given overrides it)."""
    output_dir: Path = Path("outputs/benchmark")
    """Where the runs, benchmark.json, benchmark.md and the plots are written."""
    data_dir: Optional[Path] = None
    """Procedural collection, generated if missing and reused; output_dir/data when None."""
    collection: Optional[Path] = None
    """An existing collection to benchmark on instead of the procedural cars (nothing is generated)."""
    collection_layout: Literal["scene-collection", "srn"] = "scene-collection"
    """Layout of `collection`: folders of blender/nerfstudio scenes, or ShapeNet-SRN scenes."""
    basis_scenes: Optional[Tuple[str, ...]] = None
    """Folder names of the scenes the autoencoder and the basis are trained on; None: the first num_basis_scenes
    of the sorted folders."""
    new_scenes: Optional[Tuple[str, ...]] = None
    """Folder names of the new scenes every method fits; None: the num_new_scenes folders after the basis scenes.
    They must not overlap the basis scenes."""
    autoencoder: Optional[Path] = None
    """Local AutoencoderKL or AutoencoderTiny directory, or `shipped` for the one inside the package (the one-off cost
    its training log recorded is reported); None trains the compact one on the basis scenes (a one-off cost)."""
    basis: Optional[Path] = None
    """Basis checkpoint to fit Micro-Macro against (its autoencoder and sizes are used); None trains one."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Device of every training run."""
    image_size: int = 128
    """Side of the generated images."""
    num_basis_scenes: int = 10
    """Scenes [0, N) of the collection: the autoencoder and the basis are trained on them."""
    num_new_scenes: int = 5
    """K: scenes [N, N + K), never seen by the autoencoder or the basis, fitted jointly by every method."""
    sweep_new_scenes: Tuple[int, ...] = ()
    """Smaller K at which the latent methods are also run, each on the first K of the new scenes with the same
    training time per scene (latent_minutes x K / num_new_scenes); the report gives per-scene time to target against
    K, which shows the shared decoder's adaptation amortised over more scenes. Empty: the num_new_scenes run only."""
    baseline_num_scenes: Optional[int] = None
    """How many of the new scenes (the first ones) triplane-rgb fits, whose time per scene does not depend on how
    many scenes share its run; None: all K. Times per scene are each method's time over its own scenes."""
    num_train_views: int = 50
    """Training views per scene."""
    num_test_views: int = 10
    """Held-out views per scene."""
    seed: int = 0
    """Seed of the collection and of every run."""
    autoencoder_training: AETrainingConfig = field(default_factory=lambda: AETrainingConfig(max_minutes=8.0))
    """Recipe and budget of the compact autoencoder trained when no autoencoder is given."""
    basis_method: str = "latent-triplane-ae-small"
    """Registered preset of the basis stage (a latent-triplane-ae method), run with its own phases; its field gets the
    comparison's sizes."""
    basis_ray_steps: Optional[int] = None
    """Steps of the basis stage's fit phase; None: the basis preset's."""
    basis_joint_steps: Optional[int] = None
    """Steps of the basis stage's joint phase; None: the basis preset's."""
    basis_decoder_steps: Optional[int] = None
    """Steps of the basis stage's decoder phase; None: the basis preset's."""
    per_scene_latent: bool = True
    """Also fit per-scene latent planes (the latent method without a basis), which tells how much of the gain is the
    latent space and how much the basis; False compares only Micro-Macro with the baseline."""
    latent_method: str = "latent-triplane-small"
    """Registered preset of the latent runs on the new scenes, run with its own schedule under the time budget."""
    latent_ray_steps: Optional[int] = None
    """Ray steps of the latent runs before their decoder steps, however many scenes they fit; None: the latent
    preset's (its ray_steps plus its ray_steps_per_scene for each scene)."""
    rgb_method: str = "triplane-rgb"
    """Registered preset of the baseline: learning rate and schedule; its field gets the same sizes."""
    sizes: FieldSizes = field(default_factory=lambda: FieldSizes.of_method("latent-triplane-small"))
    """Field sizes of every method: those of the latent method's preset (a given basis checkpoint overrides the plane,
    basis and MLP sizes)."""
    latent_rays_per_batch: int = 1024
    """Latent rays per training step of the latent runs."""
    rgb_rays_per_batch: int = 1024
    """RGB rays per training step of the baseline (on 2 cores 1024 beat 4096 at equal training time)."""
    rgb_minutes: float = 10.0
    """Training-time budget of triplane-rgb on the K new scenes."""
    latent_minutes: float = 10.0
    """Training-time budget of each latent-triplane run on the K new scenes (the baseline's budget by default)."""
    micro_macro_shared: Literal["frozen", "train"] = "frozen"
    """Basis and MLP during the Micro-Macro fit: frozen (the default of a loaded basis) or fine-tuned (the paper)."""
    curve_points: int = 6
    """Held-out evaluations per run, log-spaced in training time from first_eval_seconds to the budget."""
    first_eval_seconds: float = 10.0
    """Training time of the first evaluation after the one at zero."""
    eval_views_per_scene: int = 1
    """Held-out views per scene in the curve's evaluations (the final figures use every held-out view)."""
    render_views: int = 3
    """Full-resolution renders timed per method, after one warm-up render."""
    target_margin_db: float = 0.5
    """Quality target: the baseline's final curve PSNR minus this."""
    scene_counts: Tuple[int, ...] = (1, 10, 100, 1000, 10000)
    """Collection sizes N at which the effective memory per scene is reported."""
    time_target: float = 0.10
    """Target: per-scene time to the quality target, as a fraction of the baseline's."""
    memory_target: float = 0.50
    """Target: effective memory per scene at memory_target_scenes, as a fraction of the baseline's."""
    memory_target_scenes: int = 1000
    """N at which the memory target is judged."""

    def basis_phases(self) -> Tuple[int, int, int]:
        """Steps of the basis stage's fit, joint and decoder phases: the ones given, else the basis preset's."""
        preset = preset_config(self.basis_method)
        model = preset.pipeline.model
        ray = model.ray_steps or 0
        joint = model.joint_steps
        decoder = max(0, preset.max_num_iterations - ray - joint) if model.ray_steps is not None else 0
        given = (self.basis_ray_steps, self.basis_joint_steps, self.basis_decoder_steps)
        return tuple(
            mine if mine is not None else theirs for mine, theirs in zip(given, (ray, joint, decoder), strict=True)
        )

    def latent_runs(self) -> Tuple[str, ...]:
        """The latent methods this run compares with the baseline (report keys)."""
        return ("latent-micro", "latent-micro-macro") if self.per_scene_latent else ("latent-micro-macro",)

    def resolved_sizes(self) -> FieldSizes:
        """A copy of the comparison's field sizes (a given basis changes the copy)."""
        return FieldSizes(**vars(self.sizes))

    def resolved_data_dir(self) -> Path:
        if self.collection is not None:
            return self.collection
        return self.data_dir if self.data_dir is not None else self.output_dir / "data"


TOY_AUTOENCODER = CompactAEConfig(block_out_channels=(8, 8, 8, 8), latent_channels=4)
"""The toy preset's autoencoder architecture, and the tests': an 8x compact AutoencoderKL that encodes in
milliseconds."""
TOY_SIZES = FieldSizes(
    plane_resolution=16,
    micro_features=4,
    macro_features=4,
    num_basis=2,
    mlp_hidden_width=16,
    num_coarse_samples=16,
    num_importance_samples=16,
)
"""The toy preset's field sizes; the tests' runs take its plane side and samples."""
TOY_RAYS = 256
"""Rays per step of the toy preset's baseline and of the tests' runs."""


def _toy() -> BenchmarkConfig:
    return BenchmarkConfig(
        preset="toy",
        output_dir=Path("outputs/benchmark-toy"),
        image_size=32,
        num_basis_scenes=2,
        num_new_scenes=2,
        num_train_views=6,
        num_test_views=2,
        autoencoder_training=AETrainingConfig(
            architecture=TOY_AUTOENCODER, crop_size=None, batch_size=4, max_minutes=0.03, eval_every_seconds=60.0
        ),
        sizes=TOY_SIZES,
        latent_rays_per_batch=64,
        rgb_rays_per_batch=TOY_RAYS,
        basis_ray_steps=4,
        basis_joint_steps=2,
        basis_decoder_steps=0,
        latent_ray_steps=20,
        rgb_minutes=0.03,
        latent_minutes=0.03,
        curve_points=2,
        first_eval_seconds=0.5,
        eval_views_per_scene=1,
        render_views=1,
    )


def _cpu() -> BenchmarkConfig:
    # the shipped autoencoder (its one-off cost reported from its training log); --autoencoder None trains one here
    return BenchmarkConfig(preset="cpu", output_dir=Path("outputs/benchmark"), autoencoder=Path("shipped"))


def _gpu() -> BenchmarkConfig:
    # The paper's presets (latent-triplane, latent-triplane-ae: 64x64 planes, F_mic=10 + F_mac=22, M=50, 48+48
    # samples), the basis learned on 500 scenes and 40 new scenes (its exploitation set).
    return BenchmarkConfig(
        preset="gpu",
        output_dir=Path("outputs/benchmark-gpu"),
        device="cuda",
        autoencoder=Path("shipped"),
        num_basis_scenes=500,
        num_new_scenes=40,
        basis_method="latent-triplane-ae",
        latent_method="latent-triplane",
        sizes=FieldSizes.of_method("latent-triplane"),
        latent_rays_per_batch=8192,
        rgb_rays_per_batch=8192,
        rgb_minutes=60.0,
        latent_minutes=30.0,
        curve_points=12,
        render_views=10,
    )


BENCHMARK_PRESETS: Dict[str, Callable[[], BenchmarkConfig]] = {"toy": _toy, "cpu": _cpu, "gpu": _gpu}
"""Named starting points: 'toy' (tests, seconds), 'cpu' (2 cores, under 45 minutes), 'gpu' (the paper's sizes)."""
