"""Errors about a user's input (a file, a folder, a setting), shown as one message instead of a traceback."""

from __future__ import annotations

import sys


class InputError(ValueError):
    """Bad or missing input; the message names the file or setting at fault and says what is wrong."""


def install_excepthook() -> None:
    """Makes an uncaught `InputError` print its message (in red, on stderr) and exit with status 1, as a command's
    usage error does, instead of a traceback from deep inside nerfstudio; other exceptions are untouched."""
    previous = sys.excepthook
    if getattr(previous, "shows_input_errors", False):
        return

    def hook(kind, error, traceback) -> None:
        if not issubclass(kind, InputError):
            previous(kind, error, traceback)
            return
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)

    hook.shows_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder that is needed does not exist."""
