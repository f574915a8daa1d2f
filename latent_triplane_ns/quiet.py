"""Silences the warnings known to be harmless here, each by its category and message; never all warnings."""

from __future__ import annotations

import re
import warnings
from typing import Type

HARMLESS_WARNINGS: tuple[tuple[Type[Warning], str], ...] = (
    # nerfstudio 1.1.5 indexes camera tensors with lists; the results are right with the pinned torch.
    (UserWarning, "Using a non-tuple sequence for multidimensional indexing is deprecated"),
    # nerfstudio's camera utilities (ns-render's spiral path) call torch.cross without its dim argument.
    (UserWarning, "Using torch.cross without specifying the dim arg is deprecated"),
    # nerfstudio's writer logs the loss tensor itself as a scalar.
    (UserWarning, "Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior"),
    # nerfstudio's Trainer builds its grad scaler (disabled on a CPU) through a deprecated torch alias.
    (FutureWarning, "`torch.cuda.amp.GradScaler(args...)` is deprecated"),
    # nerfstudio's modules, when imported, decorate functions with deprecated torch decorators.
    (FutureWarning, "`torch.jit.script` is deprecated"),
    (FutureWarning, "`torch.cuda.amp.custom_fwd(args...)` is deprecated"),
    (FutureWarning, "`torch.cuda.amp.custom_bwd(args...)` is deprecated"),
)
"""(category, start of the message) of each warning silenced: deprecations inside nerfstudio 1.1.5 and torch that a
user of this plugin cannot act on."""


def silence_harmless_warnings() -> None:
    """Installs one filter per known-harmless warning in this process (see HARMLESS_WARNINGS)."""
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category)


def python_warnings_option() -> str:
    """The same filters as a PYTHONWARNINGS value, for commands started as new processes: their imports of
    nerfstudio warn before any plugin is loaded."""
    return ",".join(f"ignore:{message}:{category.__name__}" for category, message in HARMLESS_WARNINGS)
