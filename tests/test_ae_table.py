"""`ltn-ae-table`: variant names by hand, and a toy table end to end with its three figures per autoencoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from latent_triplane_ns.ae_training import AETrainingConfig
from latent_triplane_ns.benchmark.autoencoders import AETableConfig, run_ae_table, variant_architecture
from latent_triplane_ns.benchmark.config import BenchmarkConfig
from latent_triplane_ns.errors import InputError


def test_variant_names_by_hand():
    f8 = variant_architecture("f8c4")
    assert f8.block_out_channels == (32, 64, 64, 64) and f8.latent_channels == 4 and f8.downsample_factor == 8
    f4 = variant_architecture("f4c16w16")
    assert f4.block_out_channels == (16, 32, 32) and f4.latent_channels == 16 and f4.downsample_factor == 4
    with pytest.raises(InputError, match="power of two"):
        variant_architecture("f6c4")
    with pytest.raises(InputError, match="expected f<factor>c<channels>"):
        variant_architecture("kl-f8")


@pytest.mark.slow
def test_toy_table_end_to_end(tiny_collection, tmp_path):
    scenes = BenchmarkConfig(
        collection=tiny_collection, image_size=32, num_basis_scenes=2, num_new_scenes=1, num_test_views=2
    )
    config = AETableConfig(
        output_dir=tmp_path / "table",
        scenes=scenes,
        variants=("f8c4w8", "f4c4w8"),
        training=AETrainingConfig(crop_size=None, max_minutes=0.02, batch_size=4, eval_every_seconds=60.0),
        fit_minutes=0.02,
    )
    lines = []
    report = run_ae_table(config, on_line=lines.append)
    assert [r["name"] for r in report["rows"]] == ["f8c4w8", "f4c4w8"]
    assert report["basis_scenes"] == ["scene_00000", "scene_00001"] and report["new_scenes"] == ["scene_00002"]
    for row in report["rows"]:
        for key in ("reconstruction_psnr", "new_scenes_reconstruction_psnr", "fit_latent_psnr", "fit_decoded_psnr"):
            assert math.isfinite(row[key]) and 0 < row[key] < 60, (row["name"], key)
        assert row["steps"] > 0 and row["images_per_second"] > 0
    assert report["rows"][1]["downsample_factor"] == 4
    saved = json.loads((tmp_path / "table" / "ae_table.json").read_text())
    assert saved["rows"] == report["rows"]
    table = (tmp_path / "table" / "ae_table.md").read_text()
    assert table.count("\n| f") == 2 and "fit: decoded PSNR (dB)" in table
    assert Path(tmp_path / "table" / "f4c4w8" / "autoencoder" / "config.json").is_file()

    # an autoencoder trained earlier (here: the first variant, moved) joins a table beside none, judged on the same
    # new scenes, with the training cost its log recorded
    import shutil

    shutil.copytree(tmp_path / "table" / "f8c4w8" / "autoencoder", tmp_path / "my-ae")
    again = run_ae_table(
        AETableConfig(
            output_dir=tmp_path / "table2",
            scenes=scenes,
            variants=(),
            trained=(str(tmp_path / "my-ae"),),
            fit_minutes=0.02,
        ),
        on_line=lines.append,
    )
    (row,) = again["rows"]
    first = report["rows"][0]
    assert row["name"] == "my-ae" and row["kind"] == "AutoencoderKL" and row["downsample_factor"] == 8
    assert (row["steps"], row["train_minutes"], row["reconstruction_psnr"]) == (
        first["steps"],
        first["train_minutes"],
        first["reconstruction_psnr"],
    )
    assert row["trained_on"] == tiny_collection.name
    # the same weights reconstruct the same new scenes' views alike
    assert abs(row["new_scenes_reconstruction_psnr"] - first["new_scenes_reconstruction_psnr"]) < 1e-3
    with pytest.raises(InputError, match="ltn_ae_training.json: missing"):
        run_ae_table(AETableConfig(output_dir=tmp_path / "t3", scenes=scenes, variants=(), trained=(str(tmp_path),)))
