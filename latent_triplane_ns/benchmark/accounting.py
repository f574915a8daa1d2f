"""Pure figures of a benchmark: parameter and memory accounting, time to a quality target, the evaluation
schedule."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch

from latent_triplane_ns.benchmark.config import PAPER


def count_parameters(model: Any) -> Dict[str, Any]:
    """Per-scene and shared parameters of a Tri-Plane model, as counts and bytes.

    Per scene: one scene's micro planes and its row of basis weights. Shared by every scene of a collection: the
    basis planes, the MLP and the autoencoder (encoder and decoder). Buffers (normalisation constants) are not
    parameters and are not counted.

    Args:
        model: anything with `field.triplanes` (`micro`, `weights`, `basis`, `num_scenes`), `field.mlp` and
            `autoencoder` modules, e.g. a `LatentTriplaneModel`.
    """
    planes = model.field.triplanes
    num_scenes = int(planes.num_scenes)

    def nbytes(tensors: Sequence[torch.Tensor]) -> int:
        return int(sum(t.numel() * t.element_size() for t in tensors))

    per_scene = {
        "micro_planes": planes.micro.numel() // num_scenes,
        "basis_weights": planes.weights.numel() // num_scenes,
    }
    mlp, autoencoder = list(model.field.mlp.parameters()), list(model.autoencoder.parameters())
    shared = {
        "basis": planes.basis.numel(),
        "mlp": sum(p.numel() for p in mlp),
        "autoencoder": sum(p.numel() for p in autoencoder),
    }
    return {
        "per_scene": per_scene,
        "shared": shared,
        "per_scene_bytes": nbytes([planes.micro, planes.weights]) // num_scenes,
        "shared_bytes": nbytes([planes.basis, *mlp, *autoencoder]),
    }


def effective_memory_per_scene(counts: Dict[str, Any], num_scenes: int) -> float:
    """Bytes one scene costs in a collection of `num_scenes`: its own parameters plus its share of the shared ones."""
    return counts["per_scene_bytes"] + counts["shared_bytes"] / num_scenes


def paper_size_accounting() -> Dict[str, Any]:
    """The accounting at the paper's sizes (SD-VAE, 64x64 planes, F_mic=10 + F_mac=22, M=50, MLP width 64),
    built on the meta device (no memory, no weights): the check that this accounting gives the paper's 56%."""
    from types import SimpleNamespace

    from latent_triplane_ns.autoencoder import build_compact_vae
    from latent_triplane_ns.field import MicroMacroTriplanes, TriplaneField

    with torch.device("meta"):
        sd_vae = build_compact_vae((128, 256, 512, 512), latent_channels=4, layers_per_block=2)
        ae = torch.nn.ModuleDict({"vae": sd_vae})
        micro_macro = SimpleNamespace(
            field=TriplaneField(MicroMacroTriplanes(1, 64, 10, 22, 50), 4, 64, "torch"), autoencoder=ae
        )
        rgb = SimpleNamespace(
            field=TriplaneField(MicroMacroTriplanes(1, 64, 32, 0, 0), 3, 64, "torch"), autoencoder=torch.nn.Module()
        )
    mm_counts, rgb_counts = count_parameters(micro_macro), count_parameters(rgb)
    n = PAPER["scenes"]
    return {
        "micro_macro": mm_counts,
        "triplane_rgb": rgb_counts,
        "ratio_at_1000": effective_memory_per_scene(mm_counts, n) / effective_memory_per_scene(rgb_counts, n),
    }


def time_to_target(curve: Sequence[Dict[str, float]], target: float, key: str = "psnr") -> Optional[float]:
    """Training seconds at which a curve first reaches `target`, linearly interpolated between the two evaluations
    around the crossing; None when it never does."""
    previous = None
    for point in curve:
        if point[key] >= target:
            if previous is None or point["train_seconds"] <= previous["train_seconds"]:
                return float(point["train_seconds"])
            gain = point[key] - previous[key]
            fraction = (target - previous[key]) / gain if gain > 0 else 1.0
            t0, t1 = previous["train_seconds"], point["train_seconds"]
            return float(t0 + fraction * (t1 - t0))
        previous = point
    return None
