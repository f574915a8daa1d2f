"""nerfstudio's Trainer for the latent methods: its config.yml also records what rebuilds the model later."""

from __future__ import annotations

from typing import Literal

from nerfstudio.engine.trainer import Trainer


class LatentTrainer(Trainer):
    """nerfstudio's `Trainer`, whose run config gains the model's `restore` record once the model exists.

    `ns-train` writes config.yml before the pipeline is built, so the autoencoder's architecture (needed to rebuild
    the model when its basis checkpoint or autoencoder folder has moved) is not known then. `setup` builds the
    pipeline, then writes the config again through nerfstudio's own `save_config`, with the record in it.
    """

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        super().setup(test_mode)
        model = self.pipeline.model
        if self.local_rank == 0 and hasattr(model, "restore_record"):
            self.config.pipeline.model.restore = model.restore_record()
            self.config.save_config()
