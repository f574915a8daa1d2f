"""ltn-contact-sheet: a PNG of ground truth, decoded render and error for held-out views of a trained run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console

from latent_triplane_ns.contact_sheet import compose_sheet, sheet_rows
from latent_triplane_ns.evaluation import pick_views
from latent_triplane_ns.quiet import silence_harmless_warnings

CONSOLE = Console(width=120)


@dataclass
class ContactSheet:
    """Render a few held-out views of a few scenes of a trained run and lay them out as ground truth | decoded
    render | amplified absolute error, each row captioned with its scene and the model's PSNR for that view."""

    load_config: Path
    """config.yml of the run (as for ns-eval)."""
    output_path: Path = Path("contact_sheet.png")
    """PNG file to write."""
    num_scenes: int = 3
    """Scenes shown: the first ones, in scene-index order."""
    views_per_scene: int = 2
    """Held-out views shown per scene: the first ones."""
    error_gain: float = 4.0
    """Factor the absolute error is multiplied by before display."""

    def main(self) -> None:
        """Loads the run, renders the views, writes the sheet and prints every row's PSNR."""
        from nerfstudio.utils.eval_utils import eval_setup

        _, pipeline, _, step = eval_setup(self.load_config, test_mode="test")
        scene_of_image = pipeline.datamanager.eval_dataset.cameras.metadata["scene_index"].view(-1).tolist()
        indices = pick_views(scene_of_image, self.views_per_scene, self.num_scenes)
        rows = sheet_rows(pipeline, indices)
        sheet = compose_sheet(rows, self.error_gain)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(self.output_path)
        for row in rows:
            CONSOLE.print(f"{row.scene_name} held-out view {row.image_index}: PSNR {row.psnr:.2f} dB")
        CONSOLE.print(f"[bold green]Contact sheet of {len(rows)} views (step {step}): {self.output_path}")


def entrypoint() -> None:
    silence_harmless_warnings()
    tyro.cli(ContactSheet).main()


if __name__ == "__main__":
    entrypoint()
