"""Measurements of a benchmark run: peak memory of the process and render speed of a model."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch


def sync(device: torch.device) -> None:
    """Waits for the device's queued work, so that a clock read next measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_bytes(key: str) -> Optional[int]:
    """A memory figure of /proc/self/status (Linux), e.g. VmRSS (now) or VmHWM (peak), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> int:
    """Resets the process's peak resident set where Linux allows it, so the peak measured later is the training's
    (the imports of torch and nerfstudio peak above what a small run ever needs); returns the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    now = _proc_status_bytes("VmRSS")
    return now if now is not None else peak_rss()


def peak_rss() -> int:
    """Peak resident set of this process, in bytes, since the last `reset_peak_rss` where Linux allows it."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@torch.no_grad()
def time_rendering(model, cameras: Sequence[Any]) -> Dict[str, float]:
    """Seconds per full-resolution frame of the model's render, split into the latent render and the autoencoder's
    decode (the two halves of `get_outputs_for_camera`), after one warm-up render."""
    device = torch.device(model.device)
    was_training = model.training
    model.eval()
    render_seconds, decode_seconds = 0.0, 0.0
    try:
        model.get_outputs_for_camera(cameras[0])
        for camera in cameras:
            sync(device)
            start = time.perf_counter()
            latent = model.render_latent_image(camera)["latent"]
            sync(device)
            middle = time.perf_counter()
            model.decode_latent_image(latent, int(camera.height[0]), int(camera.width[0]))
            sync(device)
            render_seconds += middle - start
            decode_seconds += time.perf_counter() - middle
    finally:
        model.train(was_training)
    frames = len(cameras)
    render_s, decode_s = render_seconds / frames, decode_seconds / frames
    total_s = render_s + decode_s
    return {
        "seconds_per_frame": total_s,
        "latent_render_seconds": render_s,
        "decode_seconds": decode_s,
        "fps": 1.0 / total_s,
        "latent_render_fps": 1.0 / max(render_s, 1e-9),
        "decode_fps": 1.0 / max(decode_s, 1e-9),
    }
