"""Benchmark: memory accounting by hand, the triplane-rgb baseline, curve analysis, and the toy preset end to end."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import fixed_batch_loss, reduced_config

from latent_triplane_ns.autoencoder import AutoencoderConfig, LatentAutoencoder
from latent_triplane_ns.basis import read_basis_checkpoint
from latent_triplane_ns.benchmark import (
    BENCHMARK_PRESETS,
    BenchmarkConfig,
    count_parameters,
    effective_memory_per_scene,
    eval_schedule,
    paper_size_accounting,
    time_to_target,
)
from latent_triplane_ns.benchmark.config import METHOD_LABELS
from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField
from latent_triplane_ns.scripts.benchmark import parse


def test_memory_accounting_matches_a_hand_count():
    # 3 scenes, 4x4 planes, F_mic=2, F_mac=3, M=2; MLP 5 -> 8 -> 1+4; a stand-in autoencoder Linear(5, 7).
    field = TriplaneField(MicroMacroTriplanes(3, 4, 2, 3, 2), out_channels=4, hidden_width=8, implementation="torch")
    counts = count_parameters(SimpleNamespace(field=field, autoencoder=torch.nn.Linear(5, 7)))
    per_scene = 3 * 2 * 4 * 4 + 2  # micro planes + one row of basis weights
    basis, mlp, ae = 2 * 3 * 3 * 4 * 4, (5 * 8 + 8) + (8 * 5 + 5), 5 * 7 + 7
    assert counts["per_scene"] == {"micro_planes": 96, "basis_weights": 2}
    assert counts["shared"] == {"basis": basis, "mlp": mlp, "autoencoder": ae}
    assert counts["per_scene_bytes"] == 4 * per_scene
    assert counts["shared_bytes"] == 4 * (basis + mlp + ae)
    assert effective_memory_per_scene(counts, 10) == pytest.approx(4 * (per_scene + (basis + mlp + ae) / 10))

    # RGB Tri-Planes: 24 per-scene features, no basis, identity autoencoder (no parameters): the MLP is all that
    # is shared.
    rgb_field = TriplaneField(
        MicroMacroTriplanes(2, 4, 24, 0, 0), out_channels=3, hidden_width=8, implementation="torch"
    )
    identity = LatentAutoencoder(AutoencoderConfig(source="identity"))
    rgb = count_parameters(SimpleNamespace(field=rgb_field, autoencoder=identity))
    assert rgb["per_scene_bytes"] == 4 * 3 * 24 * 4 * 4
    assert rgb["shared_bytes"] == 4 * ((24 * 8 + 8) + (8 * 4 + 4))


def test_paper_sizes_give_the_papers_memory_figure():
    paper = paper_size_accounting()
    assert paper["micro_macro"]["per_scene"] == {"micro_planes": 3 * 10 * 64 * 64, "basis_weights": 50}
    assert paper["micro_macro"]["shared"]["basis"] == 13_516_800
    assert paper["micro_macro"]["shared"]["autoencoder"] == 83_653_863  # Stable Diffusion's VAE
    assert paper["triplane_rgb"]["per_scene"]["micro_planes"] == 393_216
    assert paper["ratio_at_1000"] == pytest.approx(0.56, abs=0.005)  # the paper: 44% less at 1000 scenes


def test_time_to_target_interpolates_and_reports_misses():
    curve = [
        {"train_seconds": 0.0, "psnr": 10.0},
        {"train_seconds": 10.0, "psnr": 20.0},
        {"train_seconds": 30.0, "psnr": 25.0},
    ]
    assert time_to_target(curve, 15.0) == pytest.approx(5.0)
    assert time_to_target(curve, 22.5) == pytest.approx(20.0)
    assert time_to_target(curve, 9.0) == 0.0
    assert time_to_target(curve, 25.1) is None
    times = eval_schedule(100.0, 1.0, 3)
    assert times == pytest.approx([0.0, 1.0, 10.0, 100.0])


def test_cli_options_override_only_what_they_name():
    assert parse(["--preset", "cpu"]) == parse([])  # the cpu preset is the default
    for name in BENCHMARK_PRESETS:
        preset = BENCHMARK_PRESETS[name]()
        parsed = parse(["--preset", name])
        assert all(getattr(parsed, f.name) == getattr(preset, f.name) for f in fields(BenchmarkConfig)), name
    gpu, preset = parse(["--preset", "gpu", "--rgb-minutes", "3", "--sizes.num-basis", "7"]), BENCHMARK_PRESETS["gpu"]()
    assert gpu.rgb_minutes == 3 != preset.rgb_minutes and gpu.sizes.num_basis == 7 != preset.sizes.num_basis
    assert gpu.sizes.plane_resolution == preset.sizes.plane_resolution and gpu.latent_minutes == preset.latent_minutes
    with pytest.raises(SystemExit):
        parse(["--preset", "nope"])


def test_triplane_rgb_one_scene_loss_falls(tiny_collection, tmp_path):
    from nerfstudio.scripts.train import _set_random_seed

    config = reduced_config("triplane-rgb", tiny_collection, tmp_path, steps=80, scene_range=(0, 1))
    config.save_config()
    # seeded as ns-train seeds (machine.seed): the samplers draw from torch's global generator, whose state otherwise
    # depends on which tests ran before in the same worker
    _set_random_seed(config.machine.seed)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    model = trainer.pipeline.model
    planes = model.field.triplanes
    # RGB rays at full resolution, 32 features of one scene, nothing shared but the MLP
    assert model.autoencoder.vae is None and model.autoencoder.downsample_factor == 1
    assert planes.num_scenes == 1 and planes.num_basis == 0 and planes.num_features == 32
    assert set(model.get_param_groups()) == {"micro_planes", "mlp"}
    counts = count_parameters(model)
    assert counts["per_scene_bytes"] == 4 * 3 * 32 * 16 * 16
    assert counts["shared"]["autoencoder"] == 0 and counts["shared"]["basis"] == 0
    before = fixed_batch_loss(trainer.pipeline)
    trainer.train()
    after = fixed_batch_loss(trainer.pipeline)
    print(f"triplane-rgb one scene: fixed-batch loss {before:.4f} -> {after:.4f}")
    assert after < 0.5 * before


@pytest.fixture
def other_collection(tiny_collection, tmp_path):
    """A collection the generator did not write: scene folders of other names, no collection.json or scene.json."""
    import shutil

    root = tmp_path / "objects"
    root.mkdir()
    for source, name in zip(sorted(tiny_collection.glob("scene_*")), ["lamp", "mug", "teapot", "vase"], strict=True):
        shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("scene.json"))
    return root


@pytest.mark.slow
def test_toy_benchmark_on_a_collection_it_did_not_generate(other_collection, tmp_path):
    from latent_triplane_ns.scripts.benchmark import entrypoint

    out = tmp_path / "bench"
    # the toy preset's latent runs make 20 ray steps, then decoder steps: rendered views decoded, the decoder trained
    # the baseline fits the first of the two new scenes: its time per scene is its time over that one
    argv = ["--preset", "toy", "--output-dir", str(out), "--collection", str(other_collection)]
    entrypoint([*argv, "--baseline-num-scenes", "1"])
    report = json.loads((out / "benchmark.json").read_text())
    for name, result in report["methods"].items():
        # the scenes after the basis scenes
        assert result["scene_names"] == (["teapot"] if name == "triplane-rgb" else ["teapot", "vase"])
        assert math.isfinite(result["final"]["psnr"])
        if result["time_to_target_seconds"] is not None:
            per_scene = result["time_to_target_seconds"] / len(result["scene_names"])
            assert result["per_scene_time_to_target_seconds"] == pytest.approx(per_scene)
    baseline = report["methods"]["triplane-rgb"]
    assert baseline["time_ratio"] == pytest.approx(1.0)
    assert "triplane-rgb fitted the first 1 of them" in (out / "benchmark.md").read_text()
    mm = report["methods"]["latent-micro-macro"]
    assert mm["trainable_parameter_groups"] == ["basis_weights", "decoder", "micro_planes"]
    events = [
        json.loads(line) for line in (out / "logs" / "latent-micro-macro.progress.jsonl").read_text().splitlines()
    ]
    (switch,) = [e for e in events if e["event"] == "decoder"]
    assert switch["step"] == 20 and 0 < switch["train_seconds"] < 0.03 * 60
    assert "decoder" in report["methods"]["latent-micro"]["trainable_parameter_groups"]
    basis = read_basis_checkpoint(Path(report["one_off"]["basis"]["path"]))
    assert basis.settings.scene_names == ("lamp", "mug")
    assert not (out / "data").exists()  # nothing generated
    # again, the autoencoder fine-tuned from the first one, no per-scene latent planes, and Micro-Macro also on the
    # first new scene alone (K = 1) with the same time per scene: the baseline is reused
    shutil.copytree(out / "autoencoder", tmp_path / "first-ae")
    start = ["--autoencoder-training.start-from", str(tmp_path / "first-ae"), "--no-per-scene-latent"]
    entrypoint([*argv, "--baseline-num-scenes", "1", *start, "--sweep-new-scenes", "1"])
    again = json.loads((out / "benchmark.json").read_text())
    assert list(again["methods"]) == ["triplane-rgb", "latent-micro-macro"] and again["reused_stages"].keys() == {
        "generate",
        "triplane-rgb",
    }
    assert again["one_off"]["autoencoder"]["start_from"] == str(tmp_path / "first-ae")
    assert math.isfinite(again["methods"]["latent-micro-macro"]["final"]["latent_psnr"])
    table = (out / "benchmark.md").read_text()
    assert "The autoencoder was fine-tuned from first-ae" in table and METHOD_LABELS["latent-micro"] not in table
    (alone,) = again["sweep"]["latent-micro-macro"].values()
    assert alone["scene_names"] == ["teapot"] and math.isfinite(alone["final"]["psnr"])
    job = json.loads((out / "logs" / "latent-micro-macro-k1.job.json").read_text())
    assert job["budget_seconds"] == pytest.approx(0.03 * 60 / 2)  # half the scenes, half the time
    if alone["time_to_target_seconds"] is not None:
        assert alone["per_scene_time_to_target_seconds"] == pytest.approx(alone["time_to_target_seconds"])
    sweep_table = table.split("Per-scene time to target against K")[1].split("\n\n")[1]
    rows = [line for line in sweep_table.splitlines() if line.startswith(f"| {METHOD_LABELS['latent-micro-macro']} | ")]
    assert [row.split(" | ")[1] for row in rows] == ["1", "2"]
    assert (out / "time_vs_k.png").stat().st_size > 0


@pytest.mark.parametrize(
    "selection, error",
    [
        (["--basis-scenes", "lamp", "mug", "--new-scenes", "mug", "vase"], r"\['mug'\] are both basis scenes and new"),
        (["--new-scenes", "teapot", "bowl"], r"scene\(s\) \['bowl'\] are not scenes of this collection"),
        (["--basis-scenes", "lamp"], "1 basis scene\\(s\\), too few for a basis of 2 plane sets"),
        (["--baseline-num-scenes", "3"], "--baseline-num-scenes 3: triplane-rgb fits a part of the 2 new scenes"),
        (["--sweep-new-scenes", "1", "2"], "--sweep-new-scenes 1 2: each K runs .* the 2 new scenes; give distinct"),
        (["--sweep-new-scenes", "1", "1"], "give distinct values from 1 to 1"),
        (
            ["--num-new-scenes", "3"],
            "--num-new-scenes 3 asked, but the collection holds 4 scenes and 2 of them are basis",
        ),
    ],
)
def test_a_bad_scene_selection_is_refused_before_any_training(other_collection, tmp_path, selection, error):
    from latent_triplane_ns.scripts.benchmark import entrypoint

    out = tmp_path / "bench"
    with pytest.raises(ValueError, match=error):
        entrypoint(["--preset", "toy", "--output-dir", str(out), "--collection", str(other_collection), *selection])
    assert not any((out / "runs").iterdir()) and not (out / "autoencoder").exists()


def test_an_autoencoder_of_another_latent_size_than_the_given_basis_is_refused_naming_both(tmp_path):
    from latent_triplane_ns.autoencoder import CompactAEConfig
    from latent_triplane_ns.basis import write_basis_checkpoint
    from latent_triplane_ns.scripts.benchmark import entrypoint

    model = SimpleNamespace(
        field=TriplaneField(MicroMacroTriplanes(1, 4, 3, 2, 2), 3, 8, "torch"),
        autoencoder=LatentAutoencoder(AutoencoderConfig(source="identity")),
        config=SimpleNamespace(mlp_hidden_width=8),
        scene_names=["s0"],
    )
    basis = write_basis_checkpoint(model, tmp_path / "basis", step=1, complete=True)
    CompactAEConfig(block_out_channels=(8, 8), latent_channels=4).build().save_pretrained(str(tmp_path / "ae"))
    out = tmp_path / "bench"
    with pytest.raises(
        ValueError,
        match=r"ae: an autoencoder of 4 latent channels at 2x downsampling, while the basis "
        r".*basis was trained with one of 3 channels at 1x",
    ):
        entrypoint(
            ["--preset", "toy", "--output-dir", str(out), "--basis", str(basis), "--autoencoder", str(tmp_path / "ae")]
        )
    assert not out.exists() or not (out / "runs").exists()


def test_stage_records_reuse_only_a_complete_stage_of_the_same_settings(tmp_path):
    from latent_triplane_ns.benchmark.resume import StageRecords

    lines = []
    records = StageRecords(tmp_path, say=lines.append)
    runs = []

    def compute():
        runs.append(1)
        return {"seconds": 12.5}

    first = records.run("autoencoder", {"lr": 1e-3, "sizes": (1, 2)}, compute)
    assert runs == [1] and not records.reused and lines == []
    again = StageRecords(tmp_path, say=lines.append).run("autoencoder", {"lr": 1e-3, "sizes": [1, 2]}, compute)
    assert runs == [1] and again["figures"] == {"seconds": 12.5} and again["id"] == first["id"]
    assert lines[-1].startswith("autoencoder: reused from the earlier run")
    # other settings: run again (its record replaced); whole outputs are required too
    other = StageRecords(tmp_path, say=lines.append)
    other.run("autoencoder", {"lr": 2e-3, "sizes": [1, 2]}, compute)
    assert (
        runs == [1, 1]
        and "its settings differ from the earlier run's (lr: 0.001 there, 0.002 now); running it" in lines[-1]
    )
    StageRecords(tmp_path, say=lines.append).run("autoencoder", {"lr": 2e-3, "sizes": [1, 2]}, compute, lambda: "gone")
    assert runs == [1, 1, 1] and lines[-1] == "autoencoder: not reused, gone; running it again"
    # an unfinished run (its folder, no record) is removed and started again, saying why
    leftover = tmp_path / "runs" / "basis"
    (leftover / "nerfstudio_models").mkdir(parents=True)
    StageRecords(tmp_path, say=lines.append).run("basis", {}, compute, leftover=leftover, restart_reason="why")
    assert lines[-1] == f"basis: an earlier run did not finish ({leftover} is left from it); why"
    assert not leftover.exists() and runs == [1, 1, 1, 1]
    (tmp_path / "basis.stage.json").write_text('{"key": ')  # damaged: never taken for done
    StageRecords(tmp_path, say=lines.append).run("basis", {}, compute)
    assert runs == [1, 1, 1, 1, 1] and "cannot be read" in lines[-1]


def test_a_given_folder_whose_weights_were_replaced_in_place_is_not_the_one_a_stage_used(tmp_path):
    import hashlib

    from latent_triplane_ns.benchmark.resume import StageRecords, folder_identity

    ae = tmp_path / "ae"
    (ae / "vae").mkdir(parents=True)
    (ae / "config.json").write_text("{}")
    (ae / "vae" / "weights.safetensors").write_bytes(b"first weights")
    by_hand = hashlib.sha256(b"config.json\0{}" + b"vae/weights.safetensors\0first weights").hexdigest()[:16]
    first = folder_identity(tmp_path / "." / "ae")
    assert first == f"{ae.resolve()} (sha256 {by_hand})"
    runs, lines = [], []
    records = StageRecords(tmp_path / "logs", say=lines.append)
    records.run("basis", {"autoencoder": first}, lambda: runs.append(1) or {})
    StageRecords(tmp_path / "logs", say=lines.append).run("basis", {"autoencoder": folder_identity(ae)}, lambda: {})
    assert runs == [1] and lines[-1].startswith("basis: reused")  # the same bytes: reused
    (ae / "vae" / "weights.safetensors").write_bytes(b"other weights")  # retrained into the same folder
    StageRecords(tmp_path / "logs", say=lines.append).run(
        "basis", {"autoencoder": folder_identity(ae)}, lambda: runs.append(1) or {}
    )
    assert runs == [1, 1] and "its settings differ from the earlier run's" in lines[-1]


def test_a_method_is_rerun_when_its_presets_schedule_or_learning_rates_change(tmp_path):
    from latent_triplane_ns.benchmark.stages import Workspace, method_key

    workspace = Workspace(data=tmp_path / "data", runs=tmp_path / "runs", logs=tmp_path / "logs")
    config = BENCHMARK_PRESETS["cpu"]()
    sizes = config.resolved_sizes()

    def key(method, **settings):
        return method_key(config, workspace, (method, 1024, 5.0, settings), ["a", "b"], sizes, basis=None)

    # the preset's schedule and learning rates are part of the key: a run made under another preset is not reused
    preset = {
        "ray_steps": 0,
        "ray_steps_per_scene": 10,
        "decoder_views_per_step": 4,
        "decoder_patch_size": 16,
        "decoder_trainable": "all",
    }
    assert key("latent-triplane-small")["schedule"] == preset
    assert key("latent-triplane-small", ray_steps=50)["schedule"]["ray_steps"] == 50
    assert key("latent-triplane-small") != key("latent-triplane-small", ray_steps=50)
    assert key("latent-triplane-small") != key("latent-triplane-small", ray_steps_per_scene=20)
    assert key("latent-triplane-small") != key("latent-triplane-small", decoder_trainable="last_block")
    assert key("latent-triplane-small")["learning_rates"]["decoder"] == 1e-3
    assert key("latent-triplane-small")["learning_rates"]["micro_planes"] == 1e-2
    assert key("triplane-rgb")["learning_rates"]["micro_planes"] == 3e-2
    assert key("triplane-rgb")["schedule"]["ray_steps"] is None


def check_toy_report(out: Path) -> dict:
    """The whole toy benchmark's outputs in `out`: data, autoencoder, basis, three methods, JSON, table and plots."""
    report = json.loads((out / "benchmark.json").read_text())
    assert set(report["methods"]) == {"triplane-rgb", "latent-micro", "latent-micro-macro"}
    assert report["machine"]["versions"]["nerfstudio"] == metadata.version("nerfstudio")
    assert report["settings"]["preset"] == "toy"
    for name, result in report["methods"].items():
        assert len(result["curve"]) >= 2, name
        for point in result["curve"]:
            assert math.isfinite(point["psnr"]) and math.isfinite(point["ssim"]), name
        assert result["curve"][-1]["train_seconds"] >= 0.03 * 60
        assert math.isfinite(result["final"]["psnr"]) and result["final"]["num_views"] == 2 * 2
        assert result["rays_per_second"] > 0 and result["peak_rss_bytes"] > 0
        assert result["render"]["fps"] > 0 and result["render"]["decode_seconds"] >= 0
        assert set(result["effective_memory_bytes"]) == {"1", "10", "100", "1000", "10000"}
    methods = report["methods"]
    # effective memory per scene at N = 1000, by hand from the counted bytes: per-scene + shared / N
    rgb, mm = methods["triplane-rgb"]["parameters"], methods["latent-micro-macro"]["parameters"]
    by_hand = (mm["per_scene_bytes"] + mm["shared_bytes"] / 1000) / (
        rgb["per_scene_bytes"] + rgb["shared_bytes"] / 1000
    )
    assert methods["latent-micro-macro"]["effective_memory_ratio"]["1000"] == pytest.approx(by_hand)
    target = methods["triplane-rgb"]["curve"][-1]["psnr"] - report["settings"]["target_margin_db"]
    assert report["targets"]["quality_target_psnr"] == pytest.approx(target)
    # Micro-Macro was fitted against the frozen basis: only its per-scene parameters were optimised
    # (and the shared decoder, which the preset's decoder steps train)
    assert methods["latent-micro-macro"]["trainable_parameter_groups"] == ["basis_weights", "decoder", "micro_planes"]
    assert methods["latent-micro"]["parameters"]["shared"]["basis"] == 0
    # the basis stage is the paper's stage 1: its steps with the autoencoder frozen, then joint ones
    basis = report["one_off"]["basis"]
    assert basis["steps"] == basis["fit_steps"] + basis["joint_steps"] == 4 + 2
    basis_dir = Path(basis["path"])
    assert (basis_dir / "basis.json").is_file() and (basis_dir.parent / "basis_before_joint" / "basis.json").is_file()
    assert set(report["targets"]["verdicts"]) == {"latent-micro", "latent-micro-macro"}
    table = (out / "benchmark.md").read_text()
    assert "| method | final PSNR (dB) |" in table
    for label in ("triplane-rgb (baseline)", "per-scene planes only", "Micro-Macro"):
        assert label in table
    for plot in ("psnr_vs_time.png", "memory_per_scene.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return report


@pytest.mark.slow
def test_a_killed_toy_benchmark_rerun_reuses_its_finished_stages(tmp_path, capsys):
    """The toy preset end to end, killed once: SIGKILL once the autoencoder stage is recorded and the basis stage has
    started; the rerun into the same folder reuses the autoencoder (with the figures the first run measured), restarts
    the basis saying why, and writes the whole report."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from latent_triplane_ns.scripts.benchmark import entrypoint

    out = tmp_path / "bench"
    record = out / "logs" / "autoencoder.stage.json"
    basis_started = out / "runs" / "basis" / "latent-triplane-ae-small" / "run" / "config.yml"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [str(Path(sys.executable).parent / "ltn-benchmark"), "--preset", "toy", "--output-dir", str(out)]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (record.is_file() and basis_started.is_file()):
        assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the autoencoder stage was not recorded within 300 s")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "benchmark.json").exists()
    first = json.loads(record.read_text())

    capsys.readouterr()
    entrypoint(["--preset", "toy", "--output-dir", str(out)])
    output = " ".join(capsys.readouterr().out.split())
    assert "autoencoder: reused from the earlier run into this output folder" in output
    assert "basis: an earlier run did not finish" in output and "starts again from step 0" in output
    report = check_toy_report(out)  # complete, as a run that was never killed
    ae = report["one_off"]["autoencoder"]
    assert ae["reused"] and ae["seconds"] == first["figures"]["seconds"] > 0  # the first run's measurement
    assert ae["seconds"] == json.loads((out / "autoencoder" / "ltn_ae_training.json").read_text())["seconds"]
    assert set(report["reused_stages"]) == {"generate", "autoencoder"}
    assert "reused" not in report["one_off"]["basis"]
    table = (out / "benchmark.md").read_text()
    assert "held-out reconstruction PSNR" in table and "(reused from an earlier run)" in table
    assert "which reused autoencoder from an earlier run into the same folder" in table


def test_stage_progress_prints_a_line_per_stage_and_per_curve_point(capsys):
    from latent_triplane_ns.benchmark.progress import StageProgress, job_progress

    events = [
        {"event": "setup"},
        {"event": "train"},
        {"event": "eval", "train_seconds": 0.0, "step": 0, "psnr": 7.5, "ssim": 0.1},
        {"event": "step", "train_seconds": 1.0, "step": 10},
        {"event": "eval", "train_seconds": 2.5, "step": 25, "psnr": 12.25, "ssim": 0.3},
        {"event": "final_eval"},
        {"event": "done"},
    ]
    with StageProgress({"latent-micro": 60.0}, enabled=False) as progress:
        progress.begin("latent-micro", "fitting 2 new scenes", 60.0)
        relay = job_progress(progress)
        for event in events:
            relay({"name": "latent-micro", **event})
        progress.end()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [
        "latent-micro: begins, fitting 2 new scenes; about 60 s planned",
        "latent-micro: 0.0 s of training, step 0: held-out PSNR 7.50 dB",
        "latent-micro: 2.5 s of training, step 25: held-out PSNR 12.25 dB",
    ]
    assert lines[-1].startswith("latent-micro: ends after ") and lines[-1].endswith(" s")

    # a stage quiet for quiet_seconds gets its status
    with StageProgress({"basis": 60.0}, enabled=False, quiet_seconds=0.0) as progress:
        progress.begin("basis", "training the basis", 60.0)
        job_progress(progress)({"name": "basis", "event": "step", "train_seconds": 1.0, "step": 10})
    assert "basis: setting up step 10 held-out PSNR nan dB (0 s)" in capsys.readouterr().out


def test_log_axes_get_plain_1_2_5_ticks():
    from latent_triplane_ns.benchmark.report import log_ticks, plain_number

    labels = lambda low, high: [plain_number(t) for t in log_ticks(low, high)]  # noqa: E731
    assert labels(2, 600) == ["2", "5", "10", "20", "50", "100", "200", "500"]
    assert labels(0.24, 0.95) == ["0.3", "0.5", "0.7"]
    assert labels(13, 150) == ["20", "30", "50", "70", "100"]
    assert labels(0.7, 2e4) == ["1", "10", "100", "1,000", "10,000"]
    assert len(log_ticks(1e-6, 1e9)) <= 8
