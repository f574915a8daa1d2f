"""Only the listed harmless warnings are silenced, in this process and in the commands the demo starts."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

from latent_triplane_ns.quiet import HARMLESS_WARNINGS, python_warnings_option, silence_harmless_warnings


def test_the_listed_warnings_are_silenced_and_no_others():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_harmless_warnings()
        for category, message in HARMLESS_WARNINGS:
            warnings.warn(f"{message}. Please do something else.", category, stacklevel=1)
        warnings.warn("Using a non-tuple sequence is fine", UserWarning, stacklevel=1)  # not the listed message
        warnings.warn(
            f"{HARMLESS_WARNINGS[0][1]}.", FutureWarning, stacklevel=1
        )  # the listed message, another category
    assert [str(w.message) for w in caught] == ["Using a non-tuple sequence is fine", f"{HARMLESS_WARNINGS[0][1]}."]


def test_child_processes_get_the_same_filters():
    script = (
        "import warnings\n"
        + "".join(f"warnings.warn({m!r} + ' (child)', {c.__name__})\n" for c, m in HARMLESS_WARNINGS)
        + "warnings.warn('something a user should see', UserWarning)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": python_warnings_option()}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "something a user should see" in result.stderr
    assert not any(message in result.stderr for _, message in HARMLESS_WARNINGS)
