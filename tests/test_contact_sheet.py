"""`ltn-contact-sheet` on a tiny trained run: the PNG's layout and the PSNR it reports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import reduced_config, run_training
from PIL import Image

from latent_triplane_ns.contact_sheet import (
    CAPTION_HEIGHT,
    HEADER_HEIGHT,
    SheetRow,
    compose_sheet,
    sheet_size,
    tile_scale,
)


@pytest.fixture(scope="module")
def run_config(tiny_collection, tmp_path_factory) -> Path:
    """A 3-scene latent-triplane-small run: 3 x 2 held-out views of 32 x 32 px."""
    config = reduced_config(
        "latent-triplane-small", tiny_collection, tmp_path_factory.mktemp("sheet_run"), steps=4, scene_range=(0, 3)
    )
    config.pipeline.datamanager.cache_latents_on_disk = False  # the collection is shared with other test modules
    trainer = run_training(config)
    return trainer.base_dir / "config.yml"


def test_compose_sheet_layout_and_error_column():
    gt = np.zeros((16, 24, 3), dtype=np.float32)
    render = gt.copy()
    render[:8] = 0.1  # an error of 0.1, shown x4
    rows = [SheetRow("a", 0, 20.0, gt, render), SheetRow("b", 1, 30.0, gt, gt)]
    sheet = compose_sheet(rows, error_gain=4.0)
    scale = tile_scale(16, 24)
    assert scale == 8
    assert sheet.size == sheet_size(2, 16, 24) == (3 * 24 * scale, HEADER_HEIGHT + 2 * (CAPTION_HEIGHT + 16 * scale))
    pixels = np.asarray(sheet)
    top = HEADER_HEIGHT + CAPTION_HEIGHT
    error_column = pixels[top : top + 16 * scale, 2 * 24 * scale :]
    assert abs(int(error_column[0, 0, 0]) - round(0.4 * 255)) <= 1  # amplified error where the render is off
    assert error_column[-1, -1].max() == 0  # no error elsewhere
    with pytest.raises(ValueError, match="no held-out views"):
        compose_sheet([])


@pytest.mark.slow
def test_contact_sheet_command(run_config, tmp_path):
    from nerfstudio.utils.eval_utils import eval_setup

    output = tmp_path / "sheets" / "sheet.png"
    command = Path(sys.executable).parent / "ltn-contact-sheet"
    args = ["--load-config", str(run_config), "--output-path", str(output), "--num-scenes", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([str(command), *args, "--views-per-scene", "2"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(output) as image:
        assert image.format == "PNG"
        assert image.size == sheet_size(4, 32, 32) == (3 * 128, HEADER_HEIGHT + 4 * (CAPTION_HEIGHT + 128))
    printed = re.findall(r"(scene_\d+) held-out view (\d+): PSNR ([\d.]+) dB", result.stdout)
    assert [(name, int(view)) for name, view, _ in printed] == [
        ("scene_00000", 0),
        ("scene_00000", 1),
        ("scene_00001", 2),
        ("scene_00001", 3),
    ]
    # the PSNR printed (and captioned) is the model's own metric for that view
    _, pipeline, _, _ = eval_setup(run_config, test_mode="test")
    pipeline.model.eval()
    for _, view, psnr in printed:
        camera, batch = pipeline.datamanager.eval_item(int(view))
        metrics, _ = pipeline.model.get_image_metrics_and_images(pipeline.model.get_outputs_for_camera(camera), batch)
        assert float(psnr) == pytest.approx(metrics["psnr"], abs=0.006)
