"""The benchmark's stages: the scenes, the one-off autoencoder and basis, and each compared method's run."""

from __future__ import annotations

import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from latent_triplane_ns.autoencoder import AutoencoderConfig
from latent_triplane_ns.benchmark.config import NEVER, BenchmarkConfig, FieldSizes, preset_config
from latent_triplane_ns.benchmark.job import TrainingJob, run_job, run_job_process, write_config
from latent_triplane_ns.benchmark.plan import eval_schedule
from latent_triplane_ns.benchmark.progress import StageProgress, job_progress
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.trainer import LatentTrainerConfig


@dataclass
class Workspace:
    """Where a benchmark run keeps its data, training runs and logs."""

    data: Path
    """The procedural collection."""
    runs: Path
    """nerfstudio run folders."""
    logs: Path
    """Progress, results and output of every run."""


def collection_parser(config: BenchmarkConfig, data: Path, scenes: Optional[Sequence[str]] = None):
    """The dataparser config of the benchmark's collection, restricted to `scenes` (folder names) when given."""
    from latent_triplane_ns.dataparsers.collection import SceneCollectionDataParserConfig
    from latent_triplane_ns.dataparsers.srn import SrnCollectionDataParserConfig

    selected = tuple(scenes) if scenes is not None else None
    if config.collection_layout == "srn":
        return SrnCollectionDataParserConfig(data=data, scenes=selected, num_test_views=config.num_test_views)
    return SceneCollectionDataParserConfig(data=data, scenes=selected)


def method_trainer_config(
    method: str,
    dataparser,
    output_dir: Path,
    experiment: str,
    device: str,
    rays_per_batch: int,
    sizes: FieldSizes,
    **model_settings: Any,
):
    """A registered method's TrainerConfig for a benchmark run: the dataparser's scenes, the sizes and ray batch,
    nerfstudio's own evaluations and intermediate checkpoints off (the benchmark evaluates on its own clock)."""
    config = preset_config(method)
    config.output_dir = output_dir
    config.experiment_name = experiment
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.viewer.quit_on_train_completion = True
    config.machine.device_type = device
    config.max_num_iterations = NEVER
    if isinstance(config, LatentTrainerConfig):
        config.steps_per_scene = 0  # the budget stops the run
    config.steps_per_save = NEVER
    config.steps_per_eval_batch = NEVER
    config.steps_per_eval_image = NEVER
    config.steps_per_eval_all_images = NEVER
    config.logging.local_writer.enable = False
    datamanager = config.pipeline.datamanager
    datamanager.dataparser = dataparser
    datamanager.data = None
    datamanager.train_num_rays_per_batch = rays_per_batch
    datamanager.eval_num_rays_per_batch = rays_per_batch
    # Every run encodes its own images, so the encoding time is measured, not read from another run's cache.
    datamanager.cache_latents_on_disk = False
    model = config.pipeline.model
    for key in ("plane_resolution", "micro_features", "macro_features", "num_basis", "mlp_hidden_width"):
        setattr(model, key, getattr(sizes, key))
    model.num_coarse_samples = sizes.num_coarse_samples
    model.num_importance_samples = sizes.num_importance_samples
    for key, value in model_settings.items():
        setattr(model, key, value)
    return config


def choose_scenes(config: BenchmarkConfig, workspace: Workspace) -> Tuple[List[str], List[str], float]:
    """The basis scenes (none when a basis is given) and the new scenes, by folder name, checked before any
    training: those of the given collection, or procedural scenes [0, N) and [N, N + K), generated; returns them
    and the seconds generation took."""
    if config.collection is None:
        return generate_scenes(config, workspace)
    from latent_triplane_ns.scene_io import CollectionError, MissingFileError, find_scene_dirs

    data = Path(config.collection)
    parser = collection_parser(config, data).setup()
    present = [d.name for d in find_scene_dirs(data, parser.is_scene, parser.scene_description)]
    n, k = config.num_basis_scenes, config.num_new_scenes
    basis = [] if config.basis is not None else list(config.basis_scenes or present[:n])
    new = list(config.new_scenes or [name for name in present if name not in basis][:k])
    missing = sorted(set(basis + new) - set(present))
    if missing:
        raise MissingFileError(f"{data}: the benchmark's scene(s) {missing} are not scenes of this collection")
    overlap = sorted(set(basis) & set(new))
    if overlap:
        raise CollectionError(
            f"{data}: scene(s) {overlap} are both basis scenes and new scenes; the new scenes must be unseen by the "
            "autoencoder and the basis"
        )
    if not new:
        raise CollectionError(f"{data}: no new scenes left to fit ({len(present)} scenes, {len(basis)} for the basis)")
    check_subsets(config, len(new))
    if config.new_scenes is None and len(new) < k:
        raise CollectionError(
            f"{data}: --num-new-scenes {k} asked, but the collection holds {len(present)} scenes and {len(basis)} of "
            f"them are basis scenes, which leaves {len(new)}: lower --num-new-scenes (or --num-basis-scenes)"
        )
    return basis, new, 0.0


def check_subsets(config: BenchmarkConfig, num_new: int) -> None:
    """Refuses a baseline subset, or a K of the sweep, that is not a part of the `num_new` new scenes."""
    b = config.baseline_num_scenes
    if b is not None and not 1 <= b <= num_new:
        raise InputError(
            f"--baseline-num-scenes {b}: triplane-rgb fits a part of the {num_new} new scenes; give 1 to {num_new}"
        )
    sweep = config.sweep_new_scenes
    if any(not 1 <= k < num_new for k in sweep) or len(set(sweep)) < len(sweep):
        raise InputError(
            f"--sweep-new-scenes {' '.join(map(str, sweep))}: each K runs the latent methods on the first K of the "
            f"{num_new} new scenes; give distinct values from 1 to {num_new - 1}"
        )


def generate_scenes(config: BenchmarkConfig, workspace: Workspace) -> Tuple[List[str], List[str], float]:
    """Generates the basis collection [0, N) (unless a basis is given) and the new scenes [N, N + K); returns
    their folder names and the seconds it took."""
    from latent_triplane_ns.procedural import generate_collection

    start = time.perf_counter()
    common = dict(
        seed=config.seed,
        image_size=config.image_size,
        num_train_views=config.num_train_views,
        num_test_views=config.num_test_views,
        show_progress=False,
    )
    check_subsets(config, config.num_new_scenes)
    basis_names: List[str] = []
    if config.basis is None:
        summary = generate_collection(workspace.data, num_scenes=config.num_basis_scenes, **common)
        basis_names = [d.name for d in summary.scene_dirs]
    summary = generate_collection(
        workspace.data, num_scenes=config.num_new_scenes, first_scene=config.num_basis_scenes, **common
    )
    return basis_names, [d.name for d in summary.scene_dirs], time.perf_counter() - start


def run_folder(workspace: Workspace, experiment: str, method: str) -> Path:
    """The nerfstudio run folder of one of the benchmark's runs (`method_trainer_config`'s base dir)."""
    return workspace.runs / experiment / method / "run"


def data_key(config: BenchmarkConfig, workspace: Workspace) -> Dict[str, Any]:
    """The settings that decide the benchmark's scenes: the key of the generation, part of every stage's key."""
    return {
        "data": str(Path(workspace.data).resolve()),
        "collection_layout": config.collection_layout,
        "generated": config.collection is None,
        "seed": config.seed,
        "image_size": config.image_size,
        "num_train_views": config.num_train_views,
        "num_test_views": config.num_test_views,
        "num_basis_scenes": config.num_basis_scenes,
        "num_new_scenes": config.num_new_scenes,
        "basis_scenes": config.basis_scenes,
        "new_scenes": config.new_scenes,
        "basis_given": config.basis is not None,
    }


def autoencoder_key(config: BenchmarkConfig, workspace: Workspace, basis_names: Sequence[str]) -> Dict[str, Any]:
    """What makes the one-off autoencoder: the images it learns from, its recipe and budget, the device."""
    return {
        **data_key(config, workspace),
        "scenes": list(basis_names),
        "training": asdict(config.autoencoder_training),
        "device": config.device,
    }


def basis_key(
    config: BenchmarkConfig, workspace: Workspace, basis_names: Sequence[str], autoencoder: str, sizes: FieldSizes
) -> Dict[str, Any]:
    """What makes the one-off basis: its scenes, the autoencoder it starts from (the id of the autoencoder stage's
    record, or the folder given), the method, its steps, sizes and rays, the device."""
    ray_steps, joint_steps, decoder_steps = config.basis_phases()
    return {
        **data_key(config, workspace),
        "scenes": list(basis_names),
        "autoencoder": autoencoder,
        "method": config.basis_method,
        "fit_steps": ray_steps,
        "joint_steps": joint_steps,
        "decoder_steps": decoder_steps,
        "decoder_patch": preset_config(config.basis_method).pipeline.model.decoder_patch_size
        if decoder_steps
        else None,
        "sizes": asdict(sizes),
        "rays_per_batch": config.latent_rays_per_batch,
        "device": config.device,
    }


def method_key(
    config: BenchmarkConfig,
    workspace: Workspace,
    run: Tuple[str, int, float, Dict[str, Any]],
    new_names: Sequence[str],
    sizes: FieldSizes,
    basis: Optional[str],
) -> Dict[str, Any]:
    """What makes a compared method's figures: its scenes, method, rays, budget and model settings, the preset's
    schedule of ray and decoder steps and its learning rates, the basis it uses (the id of the basis stage's record,
    or the folder given; None for the RGB baseline), the evaluation and render schedule, the device."""
    method, rays, minutes, settings = run
    preset = preset_config(method)
    model = preset.pipeline.model
    schedule = {
        key: settings.get(key, getattr(model, key))
        for key in (
            "ray_steps",
            "ray_steps_per_scene",
            "decoder_views_per_step",
            "decoder_patch_size",
            "decoder_trainable",
        )
    }
    return {
        **data_key(config, workspace),
        "scenes": list(new_names),
        "method": method,
        "rays_per_batch": rays,
        "minutes": minutes,
        "model": settings,
        "sizes": asdict(sizes),
        "basis": basis,
        "schedule": schedule,
        "learning_rates": {name: group["optimizer"].lr for name, group in sorted(preset.optimizers.items())},
        "curve_points": config.curve_points,
        "first_eval_seconds": config.first_eval_seconds,
        "eval_views_per_scene": config.eval_views_per_scene,
        "render_views": config.render_views,
        "device": config.device,
    }


def train_autoencoder_resuming(
    training,
    data,
    output_dir: Path,
    device: str,
    on_progress: Callable[[Dict[str, float]], None],
    say: Callable[[str], None],
) -> Dict[str, Any]:
    """`train_and_save_autoencoder`, resuming an unfinished run of the same settings from its last checkpoint (its
    step, clock and decay continue); one that cannot be resumed (other settings, an unreadable checkpoint) is
    started again, saying why."""
    from latent_triplane_ns.ae_training import UnfinishedRunError, train_and_save_autoencoder

    common = dict(device=device, on_progress=on_progress, on_message=say)
    try:
        return train_and_save_autoencoder(training, data, output_dir, **common)
    except UnfinishedRunError as err:
        say(f"autoencoder: the unfinished run in {err.folder} cannot be resumed: it {err.reason}; starting it again")
        return train_and_save_autoencoder(training, data, output_dir, start_over=True, **common)


def autoencoder_problem(output_dir: Path, training) -> Optional[str]:
    """What keeps an autoencoder folder from being reused as the finished one-off autoencoder (None: nothing)."""
    import json

    from latent_triplane_ns.ae_training import TRAINING_LOG_FILE, work_folder
    from latent_triplane_ns.benchmark.resume import plain

    log_file = Path(output_dir) / TRAINING_LOG_FILE
    if not log_file.is_file():
        return f"{output_dir} holds no finished autoencoder"
    if work_folder(output_dir).exists():
        return f"{work_folder(output_dir)} holds an unfinished run"
    try:
        settings = json.loads(log_file.read_text())["settings"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return f"{log_file} cannot be read"
    if plain(settings) != plain(asdict(training)):
        return f"{output_dir} was trained with other settings"
    return None


def basis_problem(basis_dir: Path) -> Optional[str]:
    """What keeps a basis checkpoint from being reused as the finished one-off basis (None: nothing)."""
    from latent_triplane_ns.basis import BasisCheckpointError, read_basis_checkpoint

    try:
        settings = read_basis_checkpoint(Path(basis_dir)).settings
    except BasisCheckpointError as err:
        return f"its basis checkpoint cannot be used ({err})"
    return None if settings.complete else f"{basis_dir} was written by a run that had not finished"


def autoencoder_stage(
    config: BenchmarkConfig,
    workspace: Workspace,
    basis_names: Sequence[str],
    output_dir: Path,
    progress: StageProgress,
) -> Tuple[AutoencoderConfig, Dict[str, Any]]:
    """The one-off autoencoder: the one given, or the compact one trained on the basis scenes' images (an
    unfinished training of the same settings, killed in an earlier run, is resumed from its last checkpoint)."""
    from latent_triplane_ns.ae_training import progress_status, read_training_summary, training_summary

    if config.autoencoder is not None:
        # its one-off cost, where ltn-train-ae recorded it (the shipped autoencoder's among them)
        trained = read_training_summary(Path(config.autoencoder))
        return AutoencoderConfig(source="pretrained", pretrained_path=Path(config.autoencoder)), {
            "given": str(config.autoencoder),
            **({"trained": trained} if trained is not None else {}),
        }
    training = config.autoencoder_training
    progress.begin("autoencoder", "training the autoencoder (one-off)", training.max_minutes * 60)
    log = train_autoencoder_resuming(
        training,
        collection_parser(config, workspace.data, basis_names),
        output_dir,
        config.device,
        on_progress=lambda record: progress.update(record["seconds"], progress_status(record)),
        say=progress.say,
    )
    progress.end()
    return AutoencoderConfig(source="pretrained", pretrained_path=output_dir), training_summary(log)


def basis_stage(
    config: BenchmarkConfig,
    workspace: Workspace,
    basis_names: Sequence[str],
    autoencoder: AutoencoderConfig,
    sizes: FieldSizes,
    planned_seconds: float,
    progress: StageProgress,
) -> Tuple[Path, Dict[str, Any]]:
    """The one-off basis, the paper's stage 1 on the basis scenes, in the basis preset's phases (scenes, basis and MLP
    fitted with the autoencoder frozen, the joint phase, the decoder phase)."""
    progress.begin("basis", "training the 3D-aware basis (one-off)", planned_seconds)
    ray_steps, joint_steps, decoder_steps = config.basis_phases()
    basis_config = method_trainer_config(
        config.basis_method,
        collection_parser(config, workspace.data, basis_names),
        workspace.runs,
        "basis",
        config.device,
        config.latent_rays_per_batch,
        sizes,
        autoencoder=autoencoder,
        basis_checkpoint=None,
        shared_training="auto",
        ray_steps=ray_steps,
        joint_steps=joint_steps,
    )
    basis_config.max_num_iterations = ray_steps + joint_steps + decoder_steps
    write_config(basis_config)
    job = TrainingJob(
        name="basis",
        config_file=str(basis_config.get_base_dir() / "config.yml"),
        budget_seconds=None,
        eval_times=[0.0],
        eval_views_per_scene=1,
        render_views=0,
        final_eval=False,
        progress_file=str(workspace.logs / "basis.progress.jsonl"),
        result_file=str(workspace.logs / "basis.json"),
        seed=config.seed,
    )
    # A one-off cost, not a compared method: it runs in this process (its output goes to the log).
    with open(workspace.logs / "basis.log", "w") as log, redirect_stdout(log), redirect_stderr(log):
        result = run_job(job, on_event=job_progress(progress))
    if config.device == "cuda":
        torch.cuda.empty_cache()
    basis_dir = Path(result["base_dir"]) / "basis"
    progress.end()
    return basis_dir, {
        "seconds": result["train_seconds"],
        "steps": result["steps"],
        "num_scenes": result["num_scenes"],
        "fit_steps": ray_steps,
        "joint_steps": joint_steps,
        "decoder_steps": decoder_steps,
        "held_out_psnr": result["curve"][-1]["psnr"],
        "path": str(basis_dir),
    }


def given_basis(config: BenchmarkConfig, new_names: Sequence[str], sizes: FieldSizes) -> Tuple[Path, Dict[str, Any]]:
    """A basis checkpoint given on the command line: its sizes become the field's, and it must not have been
    trained on any of the new scenes."""
    from latent_triplane_ns.basis import BasisCheckpointError, read_basis_checkpoint

    basis_dir = Path(config.basis)
    settings = read_basis_checkpoint(basis_dir).settings
    seen = set(settings.scene_names) & set(new_names)
    if seen:
        raise BasisCheckpointError(
            f"{basis_dir} was trained on {sorted(seen)}, which the benchmark fits as new scenes; raise "
            "--num-basis-scenes past the basis's collection"
        )
    sizes.plane_resolution, sizes.macro_features = settings.plane_resolution, settings.macro_features
    sizes.num_basis, sizes.mlp_hidden_width = settings.num_basis, settings.mlp_hidden_width
    sizes.micro_features = settings.micro_features
    return basis_dir, {"given": str(basis_dir)}


def compared_runs(
    config: BenchmarkConfig, basis_dir: Path, sizes: FieldSizes
) -> Dict[str, Tuple[str, int, float, Dict[str, Any]]]:
    """Every compared method: (registered method, rays per batch, budget in minutes, model settings); per-scene latent
    planes only with `config.per_scene_latent`."""
    from latent_triplane_ns.basis import read_basis_checkpoint

    per_scene_only = dict(micro_features=sizes.num_features, macro_features=0, num_basis=0, basis_checkpoint=None)
    given = config.latent_ray_steps
    schedule = {} if given is None else {"ray_steps": given, "ray_steps_per_scene": 0}
    runs = {
        "triplane-rgb": (
            config.rgb_method,
            config.rgb_rays_per_batch,
            config.rgb_minutes,
            dict(per_scene_only, autoencoder=AutoencoderConfig(source="identity")),
        ),
        "latent-micro": (
            config.latent_method,
            config.latent_rays_per_batch,
            config.latent_minutes,
            dict(
                per_scene_only,
                autoencoder=read_basis_checkpoint(basis_dir).autoencoder_config(),
                shared_training="auto",
                **schedule,
            ),
        ),
        "latent-micro-macro": (
            config.latent_method,
            config.latent_rays_per_batch,
            config.latent_minutes,
            dict(basis_checkpoint=basis_dir.resolve(), shared_training=config.micro_macro_shared, **schedule),
        ),
    }
    return {name: run for name, run in runs.items() if name == "triplane-rgb" or name in config.latent_runs()}


def method_stage(
    config: BenchmarkConfig,
    workspace: Workspace,
    name: str,
    run: Tuple[str, int, float, Dict[str, Any]],
    new_names: Sequence[str],
    sizes: FieldSizes,
    progress: StageProgress,
) -> Dict[str, Any]:
    """Fits the new scenes with one compared method in its own process, under its training-time budget."""
    method, rays, minutes, settings = run
    budget = minutes * 60
    progress.begin(name, f"fitting {len(new_names)} new scenes: {name}", budget)
    dataparser = collection_parser(config, workspace.data, new_names)
    trainer_config = method_trainer_config(
        method, dataparser, workspace.runs, name, config.device, rays, sizes, **settings
    )
    write_config(trainer_config)
    job = TrainingJob(
        name=name,
        config_file=str(trainer_config.get_base_dir() / "config.yml"),
        budget_seconds=budget,
        eval_times=eval_schedule(budget, config.first_eval_seconds, config.curve_points),
        eval_views_per_scene=config.eval_views_per_scene,
        render_views=config.render_views,
        final_eval=True,
        final_full_metrics=name != "triplane-rgb",  # the latent methods' latent PSNR too
        progress_file=str(workspace.logs / f"{name}.progress.jsonl"),
        result_file=str(workspace.logs / f"{name}.json"),
        seed=config.seed,
    )
    result = run_job_process(job, workspace.logs / f"{name}.log", job_progress(progress))
    progress.end()
    return result
