"""Derived figures, verdicts against the targets, and the outputs of a benchmark: JSON, markdown and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from latent_triplane_ns.ae_training import describe_training
from latent_triplane_ns.benchmark.accounting import effective_memory_per_scene, paper_size_accounting, time_to_target
from latent_triplane_ns.benchmark.config import METHOD_LABELS, PAPER, BenchmarkConfig, preset_config


def summarize(report: Dict[str, Any], config: BenchmarkConfig) -> None:
    """Adds the derived figures to the report: target, time to target, ratios, effective memory, verdicts."""
    methods = report["methods"]
    baseline = methods["triplane-rgb"]
    target = baseline["curve"][-1]["psnr"] - config.target_margin_db
    base_counts = baseline["parameters"]
    base_k = len(baseline["scene_names"])
    base_time = time_to_target(baseline["curve"], target)
    base_per_scene = None if base_time is None else base_time / base_k
    scene_counts = sorted(set(config.scene_counts) | {config.memory_target_scenes})
    for result in [*methods.values(), *(r for runs in report.get("sweep", {}).values() for r in runs.values())]:
        k = len(result["scene_names"])  # each method's time per scene is over its own scenes
        t = time_to_target(result["curve"], target)
        result["time_to_target_seconds"] = t
        result["per_scene_time_to_target_seconds"] = None if t is None else t / k
        result["time_ratio"] = None if t is None or not base_per_scene else (t / k) / base_per_scene
        result["data_prep_seconds_per_scene"] = result["data_prep_seconds"] / k
    for result in methods.values():
        result["effective_memory_bytes"] = {
            str(n): effective_memory_per_scene(result["parameters"], n) for n in scene_counts
        }
        result["effective_memory_ratio"] = {
            str(n): effective_memory_per_scene(result["parameters"], n) / effective_memory_per_scene(base_counts, n)
            for n in scene_counts
        }
    # The other way round, for when a latent method cannot reach the baseline's quality: time to the latent
    # method's own final quality (minus the margin), for it and for the baseline.
    for name in config.latent_runs():
        result = methods[name]
        k = len(result["scene_names"])
        level = result["curve"][-1]["psnr"] - config.target_margin_db
        own, base = time_to_target(result["curve"], level), time_to_target(baseline["curve"], level)
        result["at_own_quality"] = {
            "psnr": level,
            "per_scene_seconds": None if own is None else own / k,
            "baseline_per_scene_seconds": None if base is None else base / base_k,
            "ratio": None if own is None or not base else (own / k) / (base / base_k),
        }
    n = config.memory_target_scenes
    verdicts = {}
    for name in config.latent_runs():
        result = methods[name]
        memory_ratio = effective_memory_per_scene(result["parameters"], n) / effective_memory_per_scene(base_counts, n)
        verdicts[name] = {
            "reaches_quality_target": result["time_to_target_seconds"] is not None,
            "time_ratio": result["time_ratio"],
            "time_target_met": result["time_ratio"] is not None and result["time_ratio"] <= config.time_target,
            "memory_ratio": memory_ratio,
            "memory_target_met": memory_ratio <= config.memory_target,
        }
    report["targets"] = {
        "quality_target_psnr": target,
        "baseline_final_curve_psnr": baseline["curve"][-1]["psnr"],
        "time_target": config.time_target,
        "memory_target": config.memory_target,
        "memory_target_scenes": n,
        "verdicts": verdicts,
        "limits": _limits(report, config, target),
    }
    report["paper_size_accounting"] = paper_size_accounting()


def _limits(report: Dict[str, Any], config: BenchmarkConfig, target: float) -> List[str]:
    """Plain statements of what bounds the figures of this run."""
    methods, notes = report["methods"], []
    ceiling = methods[config.latent_runs()[0]].get("curve_autoencoder_psnr")
    if ceiling is not None:
        notes.append(
            f"A latent fit decoded by the given decoder cannot exceed the autoencoder's own reconstruction of the "
            f"held-out views ({ceiling:.2f} dB PSNR on the curve's views; decoder steps fine-tune the decoder past "
            f"it); the quality target is {target:.2f} dB."
        )
    ae = report["one_off"].get("autoencoder", {})
    ae = ae.get("trained", ae)  # a given autoencoder that ltn-train-ae made records its training too
    if "seconds" in ae:
        start = f"fine-tuned from {Path(ae['start_from']).name}" if ae.get("start_from") else "trained from scratch"
        if ae.get("start_from_training"):
            start += f" (after {_fmt_seconds(ae['start_from_training']['seconds'])} of training of its own)"
        notes.append(
            f"The autoencoder was {start} for {_fmt_seconds(ae['seconds'])} on {ae['num_train_images']} images "
            f"(held-out PSNR {ae['held_out_psnr']:.2f} dB); the paper fine-tunes Stable Diffusion's VAE, trained on "
            "billions of images."
        )
    basis = report["one_off"].get("basis", {})
    if "seconds" in basis:
        notes.append(
            f"The 3D-aware basis was learned on {basis['num_scenes']} scenes in {_fmt_seconds(basis['seconds'])} "
            f"({basis['fit_steps']} steps with the autoencoder frozen, {basis['joint_steps']} joint steps, "
            f"{basis.get('decoder_steps', 0)} decoder steps; the paper: 500 scenes, 100 epochs on a GPU)."
        )
    latent = preset_config(config.latent_method).pipeline.model
    if latent.ray_steps is not None:
        patch = latent.decoder_patch_size
        views = "whole rendered views" if patch is None else f"rendered windows of {patch}x{patch} latent pixels"
        notes.append(
            f"After {_ray_steps(latent.ray_steps, latent.ray_steps_per_scene, config.latent_ray_steps)}, the latent "
            "methods' training steps are decoder steps "
            f"({config.latent_method}'s schedule): they fine-tune the planes and the shared decoder on {views}, "
            "MSE(D(render), image); they count in the training time."
        )
    rgb = methods["triplane-rgb"]
    notes.append(
        f"The baseline's final PSNR ({rgb['curve'][-1]['psnr']:.2f} dB) is what it reached in its "
        f"{config.rgb_minutes:g} min budget; a longer budget raises the target and the latent methods' times with it."
    )
    notes.append(
        "All K scenes train jointly; per-scene time is the joint training time divided by K. Evaluation is excluded "
        "from the training clock; data preparation (image loading, and for latent methods encoding every training "
        "image once) is reported separately."
    )
    return notes


def _ray_steps(steps: int, per_scene: int, given: Optional[int]) -> str:
    """The latent runs' ray steps before their decoder steps, in words."""
    if given is not None or not per_scene:
        return f"{steps if given is None else given} ray steps"
    return f"{per_scene} ray steps per scene" + (f" plus {steps}" if steps else "")


def _reused(figures: Dict[str, Any]) -> str:
    """The mark of figures reused from an earlier run into the same output folder."""
    return " (reused from an earlier run)" if figures.get("reused") else ""


def _resumed(figures: Dict[str, Any]) -> str:
    """The mark of a training resumed after a kill (its time is that of the steps it kept, plus the rest)."""
    steps = [r["step"] for r in figures.get("resumed") or []]
    return f" (resumed after a kill from step {', '.join(map(str, steps))})" if steps else ""


def _reused_wall(report: Dict[str, Any]) -> str:
    """What the wall time leaves out: the stages reused from an earlier run (their figures are that run's)."""
    reused = {k: v for k, v in (report.get("reused_stages") or {}).items() if k != "generate"}
    if not reused:
        return ""
    earlier = sum(v.get("wall_seconds") or 0.0 for v in reused.values())
    return (
        f" for this run, which reused {', '.join(reused)} from an earlier run into the same folder "
        f"({earlier / 60:.1f} min of wall time then, not counted again)"
    )


def _fmt_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "not reached"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def _fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{100 * r:.0f}%"


def baseline_note(report: Dict[str, Any]) -> List[str]:
    """A line saying which new scenes triplane-rgb fitted, when they are a part of them."""
    fitted = len(report["methods"]["triplane-rgb"]["scene_names"])
    if fitted == len(report["methods"]["latent-micro-macro"]["scene_names"]):
        return []
    return [
        f"triplane-rgb fitted the first {fitted} of them (its time per scene does not depend on how many scenes "
        "share its run); every time per scene is a method's time over its own scenes.",
        "",
    ]


def by_k(report: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """Each latent method's runs of the K sweep and its run on every new scene, fewest scenes first."""
    return {
        name: sorted([*runs.values(), report["methods"][name]], key=lambda r: len(r["scene_names"]))
        for name, runs in report.get("sweep", {}).items()
    }


def k_sweep_lines(report: Dict[str, Any]) -> List[str]:
    """The table of per-scene time to target against K (none without a sweep)."""
    runs = by_k(report)
    if not runs:
        return []
    baseline = report["methods"]["triplane-rgb"]
    lines = [
        "",
        "Per-scene time to target against K (the latent methods on the first K new scenes, each with the same "
        f"training time per scene; triplane-rgb: {_fmt_seconds(baseline['per_scene_time_to_target_seconds'])} per "
        f"scene on {len(baseline['scene_names'])}):",
        "",
        "| method | K | training time per scene | final PSNR (dB) | time to target per scene | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        for r in results:
            k = len(r["scene_names"])
            lines.append(
                f"| {METHOD_LABELS[name]}{_reused(r)} | {k} | {_fmt_seconds(r['train_seconds'] / k)} "
                f"| {r['final']['psnr']:.2f} | {_fmt_seconds(r['per_scene_time_to_target_seconds'])} "
                f"| {_fmt_ratio(r['time_ratio'])} |"
            )
    return lines + ["", "![per-scene time to target against K](time_vs_k.png)"]


def markdown_report(report: Dict[str, Any]) -> str:
    """The markdown table and notes of a summarised report."""
    settings, targets, machine = report["settings"], report["targets"], report["machine"]
    n = str(targets["memory_target_scenes"])
    k = settings["num_new_scenes"]
    memory_key = "peak_cuda_bytes" if settings["device"] == "cuda" else "peak_rss_bytes"
    lines = [
        f"### Benchmark: {k} new scenes at {settings['image_size']} px, preset `{settings['preset']}`",
        "",
        *baseline_note(report),
        f"Quality target: {targets['quality_target_psnr']:.2f} dB held-out PSNR (triplane-rgb's final "
        f"{targets['baseline_final_curve_psnr']:.2f} dB minus {settings['target_margin_db']} dB).",
        "",
        f"| method | final PSNR (dB) | SSIM | time to target per scene | ratio | effective memory per scene at N={n} "
        f"| ratio | peak {'GPU memory' if settings['device'] == 'cuda' else 'RSS (over imports)'} | train rays/s "
        "| render fps (latent render / decode) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["methods"].items():
        render = r.get("render", {})
        has_decoder = r["parameters"]["shared"]["autoencoder"] > 0
        decode = f"{render['decode_fps']:.1f}" if render and has_decoder else "no decoder"
        fps = f"{render['fps']:.2f} ({render['latent_render_fps']:.2f} / {decode})" if render else "-"
        peak = r.get(memory_key)
        if peak and memory_key == "peak_rss_bytes":
            peak_text = f"{_fmt_bytes(peak)} (+{_fmt_bytes(max(peak - r['rss_before_setup_bytes'], 0))})"
        else:
            peak_text = _fmt_bytes(peak) if peak else "-"
        lines.append(
            f"| {METHOD_LABELS[name]}{_reused(r)} | {r['final']['psnr']:.2f} | {r['final']['ssim']:.3f} "
            f"| {_fmt_seconds(r['per_scene_time_to_target_seconds'])} | {_fmt_ratio(r['time_ratio'])} "
            f"| {_fmt_bytes(r['effective_memory_bytes'][n])} | {_fmt_ratio(r['effective_memory_ratio'][n])} "
            f"| {peak_text} | {r['rays_per_second']:,.0f} | {fps} |"
        )
    lines += k_sweep_lines(report)
    lines += ["", "Effective memory per scene (per-scene parameters + shared parameters / N):", ""]
    counts = list(report["methods"]["triplane-rgb"]["effective_memory_bytes"])
    lines.append("| method | " + " | ".join(f"N={c}" for c in counts) + " |")
    lines.append("|---|" + "---|" * len(counts))
    for name, r in report["methods"].items():
        cells = [
            f"{_fmt_bytes(r['effective_memory_bytes'][c])} ({_fmt_ratio(r['effective_memory_ratio'][c])})"
            for c in counts
        ]
        lines.append(f"| {METHOD_LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", "One-off costs, shared by the whole collection (not per scene):", ""]
    one_off = report["one_off"]
    lines.append(f"- scene generation: {_fmt_seconds(one_off['generate_seconds'])}")
    ae = one_off.get("autoencoder", {})
    if "seconds" in ae:
        lines.append(
            f"- autoencoder training: {_fmt_seconds(ae['seconds'])}, {ae['parameters']:,} parameters, held-out "
            f"reconstruction PSNR {ae['held_out_psnr']:.2f} dB{_resumed(ae)}{_reused(ae)}"
        )
    elif "trained" in ae:
        lines.append(
            f"- autoencoder: given ({ae['given']}), {describe_training(ae['trained'])}: a one-off cost paid before "
            "this run, not in its wall time"
        )
    elif ae:
        lines.append(f"- autoencoder: given ({ae['given']})")
    basis = one_off.get("basis", {})
    if "seconds" in basis:
        lines.append(
            f"- 3D-aware basis training: {_fmt_seconds(basis['seconds'])} on {basis['num_scenes']} scenes "
            f"({basis['fit_steps']} fit + {basis['joint_steps']} joint + {basis.get('decoder_steps', 0)} decoder "
            "steps), "
            f"held-out PSNR {basis['held_out_psnr']:.2f} dB{_reused(basis)}"
        )
    elif basis:
        lines.append(f"- basis: given ({basis['given']})")
    lines += [
        "",
        "Data preparation per scene (not in the times above): "
        + ", ".join(f"{name} {_fmt_seconds(r['data_prep_seconds_per_scene'])}" for name, r in report["methods"].items())
        + ".",
    ]
    lines += [
        "",
        f"Against the targets (time <= {_fmt_ratio(targets['time_target'])} of the baseline's, effective "
        f"memory at N={n} <= {_fmt_ratio(targets['memory_target'])}):",
        "",
    ]
    for name, v in targets["verdicts"].items():
        if v["reaches_quality_target"]:
            time_text = (
                f"time {_fmt_ratio(v['time_ratio'])} of the baseline's: {'met' if v['time_target_met'] else 'not met'}"
            )
        else:
            time_text = "does not reach the quality target within its budget: time target not met"
        lines.append(
            f"- {METHOD_LABELS[name]}: {time_text}; memory {_fmt_ratio(v['memory_ratio'])}: "
            f"{'met' if v['memory_target_met'] else 'not met'}."
        )
    lines += [
        "",
        "At each latent method's own final quality instead (its final PSNR minus the margin; not the target):",
        "",
    ]
    for name in [n for n in report["methods"] if "at_own_quality" in report["methods"][n]]:
        q = report["methods"][name]["at_own_quality"]
        lines.append(
            f"- {q['psnr']:.2f} dB: {METHOD_LABELS[name]} {_fmt_seconds(q['per_scene_seconds'])} per scene, "
            f"triplane-rgb {_fmt_seconds(q['baseline_per_scene_seconds'])} per scene (ratio {_fmt_ratio(q['ratio'])})."
        )
    paper = report["paper_size_accounting"]
    lines += [
        "",
        f"Paper: {100 * PAPER['time_reduction']:.0f}% less training time and {100 * PAPER['memory_reduction']:.0f}% "
        f"less effective memory per scene at {PAPER['scenes']} scenes, at about {PAPER['psnr_db']:.0f} dB "
        f"({PAPER['setting']}). This accounting at the paper's sizes (SD-VAE with "
        f"{paper['micro_macro']['shared']['autoencoder']:,} parameters) gives "
        f"{_fmt_ratio(paper['ratio_at_1000'])} of the baseline at {PAPER['scenes']} scenes.",
        "",
        "What limits these figures:",
        "",
    ]
    lines += [f"- {note}" for note in targets["limits"]]
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores{gpu}, "
        f"{_fmt_bytes(machine['ram_bytes'] or 0)} RAM; {versions}. Wall time {report['wall_seconds'] / 60:.1f} min"
        f"{_reused_wall(report)}.",
        "",
        "![held-out PSNR against training time](psnr_vs_time.png)",
        "![effective memory per scene](memory_per_scene.png)",
        "",
    ]
    return "\n".join(lines)


LOG_TICK_STEPS = ((1.0, 2.0, 3.0, 5.0, 7.0), (1.0, 2.0, 5.0), (1.0,))
"""Major ticks of a log axis within each power of ten, densest first."""


def log_ticks(low: float, high: float, max_ticks: int = 8) -> List[float]:
    """Major ticks of a log axis from `low` to `high`: the densest of LOG_TICK_STEPS (1-2-3-5-7, 1-2-5, powers of
    ten) that puts at most `max_ticks` ticks there; every second (third, ...) power of ten for a wider span."""
    low, high = sorted((low, high))
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for steps in LOG_TICK_STEPS:
        ticks = [s * 10.0**e for e in range(first, last + 1) for s in steps if low <= s * 10.0**e <= high]
        if len(ticks) <= max_ticks:
            return ticks
    stride = math.ceil(len(ticks) / max_ticks)
    return [t for t in ticks if round(math.log10(t)) % stride == 0]


def plain_number(value: float, _position: Optional[int] = None) -> str:
    """A tick label without powers of ten: 0.05, 0.3, 2, 1,000."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _legible_log_axis(ax, which: str) -> None:
    """A log-scaled axis a person reads: major ticks at log_ticks, labelled as plain numbers, minor ticks unlabelled
    (when the span holds fewer than two major ticks, ticks at round plain numbers)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    ticks = log_ticks(*(ax.get_xlim() if which == "x" else ax.get_ylim()))
    axis.set_major_locator(FixedLocator(ticks) if len(ticks) >= 2 else MaxNLocator(4))
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_locator(LogLocator(base=10.0, subs=tuple(range(2, 10)), numticks=100))
    axis.set_minor_formatter(NullFormatter())


def write_plots(report: Dict[str, Any], output_dir: Path) -> List[Path]:
    """psnr_vs_time.png (held-out PSNR and SSIM against training time per scene), memory_per_scene.png and, with a
    K sweep, time_vs_k.png."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = report["targets"]["quality_target_psnr"]
    figure = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for name, r in report["methods"].items():
        k = len(r["scene_names"])
        curve = [p for p in r["curve"] if p["train_seconds"] > 0]
        times = [p["train_seconds"] / k for p in curve]
        line = axes[0].plot(times, [p["psnr"] for p in curve], marker="o", label=METHOD_LABELS[name])[0]
        axes[1].plot(times, [p["ssim"] for p in curve], marker="o", color=line.get_color(), label=METHOD_LABELS[name])
        t = r.get("per_scene_time_to_target_seconds")
        if t is not None:
            axes[0].axvline(t, color=line.get_color(), linestyle=":", linewidth=1)
    axes[0].axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:.2f} dB")
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[1].set_ylabel("held-out SSIM")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(f"training time per scene (s; {k} scenes trained jointly)")
        ax.grid(True, which="both", alpha=0.3)
        _legible_log_axis(ax, "x")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    psnr_path = output_dir / "psnr_vs_time.png"
    figure.savefig(psnr_path)

    figure = Figure(figsize=(6.5, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    smallest = min(min(r["effective_memory_bytes"].values()) for r in report["methods"].values())
    unit, scale = ("MiB", 2**20) if smallest >= 2**20 else ("KiB", 2**10)
    for name, r in report["methods"].items():
        counts = [int(c) for c in r["effective_memory_bytes"]]
        values = [r["effective_memory_bytes"][str(c)] / scale for c in counts]
        ax.plot(counts, values, marker="o", label=METHOD_LABELS[name])
    ax.axvline(report["targets"]["memory_target_scenes"], color="gray", linestyle="--", linewidth=1)
    memory_path = output_dir / "memory_per_scene.png"
    _save_log_log(
        figure,
        ax,
        "scenes sharing the autoencoder / basis / MLP (N)",
        f"effective memory per scene ({unit})",
        memory_path,
    )
    return [psnr_path, memory_path, *write_k_plot(report, output_dir)]


def _save_log_log(figure, ax, xlabel: str, ylabel: str, path: Path, xlim: Optional[tuple] = None) -> None:
    """Both axes of `ax` log-scaled and legible, labelled, gridded, with a legend; the figure saved to `path`."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    _legible_log_axis(ax, "x")
    _legible_log_axis(ax, "y")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def write_k_plot(report: Dict[str, Any], output_dir: Path) -> List[Path]:
    """time_vs_k.png: each latent method's per-scene time to target against K, the baseline's as a line (none
    without a sweep; a run that missed the target has no point)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = by_k(report)
    if not runs:
        return []
    figure = Figure(figsize=(6.5, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    counts = sorted({len(r["scene_names"]) for results in runs.values() for r in results})
    for name, results in runs.items():
        reached = [r for r in results if r["per_scene_time_to_target_seconds"] is not None]
        ax.plot(
            [len(r["scene_names"]) for r in reached],
            [r["per_scene_time_to_target_seconds"] for r in reached],
            marker="o",
            label=METHOD_LABELS[name],
        )
    base = report["methods"]["triplane-rgb"]["per_scene_time_to_target_seconds"]
    if base is not None:
        ax.axhline(base, color="gray", linestyle="--", linewidth=1, label=METHOD_LABELS["triplane-rgb"])
    path = output_dir / "time_vs_k.png"
    limits = (counts[0] / 1.3, counts[-1] * 1.3)
    _save_log_log(figure, ax, "new scenes fitted jointly (K)", "time to target per scene (s)", path, limits)
    return [path]


def write_outputs(report: Dict[str, Any], output_dir: Path) -> List[Path]:
    """benchmark.json, benchmark.md and the plots; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "benchmark.json").write_text(json.dumps(report, indent=2))
    (output_dir / "benchmark.md").write_text(markdown_report(report))
    return [output_dir / "benchmark.json", output_dir / "benchmark.md", *write_plots(report, output_dir)]
