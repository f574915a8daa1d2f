"""ltn-generate: writes a procedural collection of cars, furniture, toys or kitchen objects (blender or SRN layout) to
a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console

from latent_triplane_ns.procedural import Family, generate_collection
from latent_triplane_ns.procedural.collection import Backdrop

CONSOLE = Console(width=120)


@dataclass
class GenerateConfig:
    """Generate a collection of procedural car (or furniture, toy or kitchen) scenes. Re-running completes or extends a collection:
    scenes that are already complete are kept."""

    output: Path = Path("data/procedural-cars")
    """Collection folder; scene k goes to ``scene_<k, 5 digits>/``."""
    num_scenes: int = 10
    """Number of scenes."""
    first_scene: int = 0
    """Index of the first scene; scene k depends only on (seed, k)."""
    seed: int = 0
    """Collection seed."""
    image_size: int = 128
    """Image side in pixels."""
    num_train_views: int = 50
    """Training views per scene."""
    num_test_views: int = 10
    """Held-out views per scene."""
    family: Family = "cars"
    """Object family. cars: body, cabin and wheels. furniture: tables, chairs, chests of drawers, bookcases and
    stools with wood grain, stripes or checks, a second family for measuring generalisation (evaluate on it, or
    train on it only under a seed that no evaluated scene uses). toys: robots, rockets, snowmen and stacking towers
    in bright colours, a third. kitchen: mugs, bottles, vases, teapots and jars in ceramic and glass tones, a fourth,
    for evaluation only. A folder of another family is refused."""
    backdrop: Backdrop = "alpha"
    """alpha: views with alpha (RGBA PNGs). color, gradient: views without alpha, as photographs are, over a backdrop
    of each scene's own colours (one colour, or a vertical blend of two): JPGs in blender format, RGB PNGs in SRN.
    Train on them with the default background, border (each scene's border colour), or learned."""
    format: Literal["blender", "srn"] = "blender"
    """blender: transforms_{train,test}.json and RGBA PNGs; srn: rgb/, pose/ (OpenCV), intrinsics.txt, test views
    first."""
    workers: int | None = None
    """Processes rendering scenes in parallel; None uses one per CPU core."""

    def main(self) -> None:
        """Generates the collection and prints how to train on it."""
        summary = generate_collection(
            self.output,
            num_scenes=self.num_scenes,
            seed=self.seed,
            image_size=self.image_size,
            num_train_views=self.num_train_views,
            num_test_views=self.num_test_views,
            first_scene=self.first_scene,
            fmt=self.format,
            workers=self.workers,
            family=self.family,
            backdrop=self.backdrop,
        )
        reused = len(summary.scene_dirs) - summary.num_generated
        CONSOLE.print(
            f"[bold green]{summary.num_generated} scene(s) generated, {reused} already complete, "
            f"in {summary.seconds:.1f} s: {self.output}"
        )
        parser = "scene-collection" if self.format == "blender" else "srn-collection"
        CONSOLE.print(f"Train with: ns-train latent-triplane {parser} --data {self.output}")


def entrypoint() -> None:
    """Entry point of ``ltn-generate``."""
    tyro.extras.set_accent_color("bright_yellow")
    tyro.cli(GenerateConfig).main()


if __name__ == "__main__":
    entrypoint()
