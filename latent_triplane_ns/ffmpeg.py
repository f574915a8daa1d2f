"""Makes an `ffmpeg` executable findable for `ns-render` on machines without a system ffmpeg."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional


def ensure_ffmpeg() -> Optional[str]:
    """Puts the ffmpeg binary shipped by the `imageio-ffmpeg` package on PATH when none is there.

    nerfstudio's `ns-render` and mediapy look `ffmpeg` up on PATH. The binary is linked as `ffmpeg` beside the
    Python executable (the virtual environment's bin folder), or in a user cache folder when that is read-only.

    Returns:
        The ffmpeg path now on PATH, or None when neither a system nor a packaged ffmpeg exists.
    """
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        binary = Path(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return None
    for folder in (Path(sys.executable).parent, Path.home() / ".cache" / "latent-triplane-ns" / "bin"):
        link = folder / "ffmpeg"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(binary)
        except OSError:
            continue
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
        return str(link)
    return None
