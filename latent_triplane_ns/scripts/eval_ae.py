"""`ltn-eval-ae`: how well an autoencoder reconstructs the held-out views of one or more collections."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import tyro
from rich.console import Console
from rich.table import Table

from latent_triplane_ns.quiet import silence_harmless_warnings

CONSOLE = Console()


@dataclass
class EvalAutoencoder:
    """Reconstruct every held-out view of each collection through the autoencoder (D(mean E(x)), images cropped to
    multiples of its factor as `ns-train` crops them) and print the PSNR per collection, over whole views and over
    the object's pixels only. The ceiling of any latent fit on that collection; run it on a family before training
    one, to see whether the autoencoder serves it or needs a fine-tune (`ltn-train-ae --training.start-from`)."""

    data: Tuple[Path, ...]
    """Scene collections (folders of blender/nerfstudio scene folders) whose held-out views are reconstructed."""
    autoencoder: Path = Path("shipped")
    """The autoencoder folder (diffusers layout, as `ltn-train-ae` writes it); `shipped`: the one inside the
    package."""
    scene_range: Optional[Tuple[int, int]] = None
    """[start, stop) of the sorted scene folders of each collection; all when None."""
    output: Optional[Path] = None
    """A JSON file to write the figures to as well; None: the terminal only."""

    def main(self) -> List[Dict[str, Any]]:
        rows = evaluate_autoencoder(self.autoencoder, self.data, self.scene_range)
        table = Table(title=f"Held-out reconstruction by {self.autoencoder}")
        for column in ("collection", "views", "PSNR (dB)", "object PSNR (dB)"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["collection"], str(row["views"]), f"{row['psnr']:.2f}", f"{row['object_psnr']:.2f}")
        CONSOLE.print(table)
        if self.output is not None:
            from latent_triplane_ns.atomic import write_json

            write_json(self.output, {"autoencoder": str(self.autoencoder), "rows": rows})
            CONSOLE.print(f"Wrote {self.output}")
        return rows


def evaluate_autoencoder(
    autoencoder: Path, collections: Tuple[Path, ...], scene_range: Optional[Tuple[int, int]] = None
) -> List[Dict[str, Any]]:
    """Per collection: its folder, number of held-out views, and the autoencoder's mean PSNR over them and
    pooled PSNR over their object pixels."""
    from latent_triplane_ns.ae_training import load_collection_images, object_psnr, reconstruction_psnr
    from latent_triplane_ns.autoencoder import load_pretrained_vae, vae_downsample_factor
    from latent_triplane_ns.shipped import resolve_autoencoder_folder

    vae = load_pretrained_vae(resolve_autoencoder_folder(autoencoder)).eval()
    rows = []
    for data in collections:
        images = load_collection_images(data, "test", scene_range, vae_downsample_factor(vae))
        rows.append(
            {
                "collection": str(data),
                "views": int(images.shape[0]),
                "psnr": reconstruction_psnr(vae, images),
                "object_psnr": object_psnr(vae, images),
            }
        )
    return rows


def entrypoint() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    silence_harmless_warnings()
    tyro.cli(EvalAutoencoder).main()


if __name__ == "__main__":
    entrypoint()
