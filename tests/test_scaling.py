"""ltn-scaling memory: the per-scene growth computed by hand, and the command end to end on a few tiny scenes."""

from __future__ import annotations

import json

import pytest

from latent_triplane_ns.benchmark.scaling import per_scene_memory


def test_memory_per_scene_is_the_growth_per_added_scene_against_the_baseline():
    rows = [
        dict(method="micro-macro", num_scenes=10, peak_rss_mib=150.0, checkpoint_mib=9.0),
        dict(method="micro-macro", num_scenes=110, peak_rss_mib=200.0, checkpoint_mib=12.0),
        dict(method="triplane-rgb", num_scenes=10, peak_rss_mib=100.0, checkpoint_mib=2.0),
        dict(method="triplane-rgb", num_scenes=110, peak_rss_mib=300.0, checkpoint_mib=12.0),
    ]
    baseline, micro_macro = per_scene_memory(rows)  # the baseline first, whatever the order of the rows
    assert baseline["method"] == "triplane-rgb" and micro_macro["method"] == "micro-macro"
    assert baseline["scenes_added"] == micro_macro["scenes_added"] == 100
    # by hand: 200 MiB over 100 scenes is 2048 KiB a scene; 10 MiB is 102.4 KiB
    assert baseline["rss_kib_per_scene"] == pytest.approx(2048.0)
    assert baseline["checkpoint_kib_per_scene"] == pytest.approx(102.4)
    assert micro_macro["rss_kib_per_scene"] == pytest.approx(512.0)
    assert micro_macro["rss_ratio"] == pytest.approx(0.25) and micro_macro["checkpoint_ratio"] == pytest.approx(0.3)


@pytest.mark.slow
def test_the_memory_command_runs_both_methods_at_each_size_and_writes_its_report(tmp_path, monkeypatch):
    from latent_triplane_ns.scripts.scaling import entrypoint

    out = tmp_path / "scaling"
    argv = ["ltn-scaling", "memory", "--common.output-dir", str(out), "--num-scenes", "2", "5", "--steps", "3"]
    argv += ["--image-size", "32", "--num-train-views", "3"]
    monkeypatch.setattr("sys.argv", argv)
    entrypoint()
    report = json.loads((out / "memory" / "scaling.json").read_text())
    rows = report["memory against N"]
    assert [(r["method"], r["num_scenes"]) for r in rows] == [
        ("micro-macro", 2),
        ("micro-macro", 5),
        ("triplane-rgb", 2),
        ("triplane-rgb", 5),
    ]
    for small, large in (rows[:2], rows[2:]):  # three more scenes: a larger checkpoint and some memory
        assert large["checkpoint_mib"] > small["checkpoint_mib"] and large["peak_rss_mib"] > 100
    per_scene = report["memory per scene"]
    assert [r["method"] for r in per_scene] == ["triplane-rgb", "micro-macro"] and per_scene[0]["scenes_added"] == 3
    assert "memory per scene" in (out / "memory" / "scaling.md").read_text()


@pytest.mark.slow
def test_the_steps_command_times_every_kind_of_step_and_writes_its_report(tmp_path, monkeypatch):
    from latent_triplane_ns.scripts.scaling import entrypoint

    out = tmp_path / "scaling"
    argv = ["ltn-scaling", "steps", "--output-dir", str(out), "--num-scenes", "2", "--image-size", "32"]
    monkeypatch.setattr("sys.argv", [*argv, "--steps", "1", "--warmup", "1", "--threads", "1"])
    entrypoint()
    rows = json.loads((out / "steps" / "scaling.json").read_text())["cost of each kind of step"]
    assert rows[0]["step"] == "ray step" and rows[1]["step"] == "decoder step (preset)" and len(rows) == 10
    assert all(r["median_seconds"] > 0 for r in rows)
    assert rows[0]["relative_to_ray_step"] == 1.0 and rows[1]["relative_to_preset_decoder_step"] == 1.0
