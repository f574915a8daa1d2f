"""Bad input met inside nerfstudio's own commands is shown as one message naming the file, not as a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latent_triplane_ns.errors import InputError, MissingInputError


@pytest.mark.slow
def test_ns_train_names_a_missing_basis_checkpoint_without_a_traceback(tiny_collection, tmp_path):
    missing = tmp_path / "no-such-basis"
    command = [
        str(Path(sys.executable).parent / "ns-train"),
        "latent-triplane-small",
        "--machine.device-type",
        "cpu",
        "--vis",
        "tensorboard",
        "--output-dir",
        str(tmp_path / "outputs"),
        "--pipeline.model.basis-checkpoint",
        str(missing),
        "scene-collection",
        "--data",
        str(tiny_collection),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"error: {missing}: basis checkpoint directory does not exist" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_other_exceptions_keep_their_traceback():
    script = "import latent_triplane_ns\ndef inner():\n    raise KeyError('not an input error')\ninner()\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "in inner" in result.stderr and "KeyError" in result.stderr
    assert issubclass(MissingInputError, FileNotFoundError) and issubclass(MissingInputError, InputError)
