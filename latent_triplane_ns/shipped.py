"""The compact autoencoder shipped inside the package (`autoencoder.source shipped`).

It was trained by the project's own `ltn-train-ae`: first on procedural cars, then, from those weights, on cars,
furniture and toys together, all of a seed (1) that no evaluated scene uses (the demo and the benchmark evaluate seed
0, the other families seed 7), and never on the kitchen family, which is kept for evaluation. The commands that made
it (`TRAINED_WITH.sh`) and its log (`train.log`, `ltn_ae_training.json`) lie beside the weights. Stage 1 fine-tunes
it on a collection.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_NAME = "tiny-f4c4-objects-eq"
"""Name of the shipped autoencoder: diffusers' AutoencoderTiny, 4x downsampling, 4 latent channels, trained on several
object families with an equivariance loss."""
SHIPPED_DIR = Path(__file__).parent / "shipped" / SHIPPED_NAME
"""Its folder inside the installed package (diffusers layout, latent statistics, training log, command)."""


def shipped_autoencoder_dir() -> Path:
    """The shipped autoencoder's folder, checked: a package installed without its data files gets one clear error."""
    from latent_triplane_ns.autoencoder import AutoencoderError

    if not (SHIPPED_DIR / "config.json").is_file():
        raise AutoencoderError(
            f"{SHIPPED_DIR}: the shipped autoencoder is missing from this installation (reinstall latent-triplane-ns, "
            "or train one with ltn-train-ae and give it with --pipeline.model.autoencoder.pretrained-path)"
        )
    return SHIPPED_DIR


def resolve_autoencoder_folder(given: Path) -> Path:
    """An autoencoder folder named on a command line: `shipped` is the shipped one (unless a folder of that name
    exists here), anything else the folder itself."""
    if str(given) == "shipped" and not Path(given).exists():
        return shipped_autoencoder_dir()
    return Path(given)
