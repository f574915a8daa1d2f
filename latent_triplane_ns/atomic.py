"""Atomic writes of output files and folders: a reader sees the previous complete version or the new one, never a part."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from latent_triplane_ns.errors import InputError

_RENAME_EXCHANGE = 2
"""renameat2 flag (Linux >= 3.15) that swaps two paths in one step."""
_AT_FDCWD = -100


class NotOurFolderError(InputError):
    """An output folder exists and holds something this package did not write; it is never replaced."""


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths atomically where the OS can (Linux renameat2); False where it cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _fsync_tree(root: Path) -> None:
    """Flushes every file of a folder and the folder entries themselves to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def temporary_sibling(final: Path, kind: str = "tmp") -> Path:
    """A hidden, unique name beside `final` (`.name.tmp-<pid>-<random>`): never mistaken for a real output."""
    return final.with_name(f".{final.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def check_replaceable(final: Path, marker: str) -> None:
    """Raises `NotOurFolderError` when `final` exists without the `marker` file of the folders this package writes
    (call it before a long computation whose result will replace `final`)."""
    final = Path(final)
    if final.exists() and not (final / marker).is_file():
        what = "a file" if not final.is_dir() else "a folder this program did not write"
        raise NotOurFolderError(
            f"{final}: exists and is {what} (it has no {marker}); refusing to replace it: choose another output "
            "folder, or move this one away"
        )


@contextmanager
def atomic_directory(final: Path, marker: Optional[str] = None) -> Iterator[Path]:
    """Yields a fresh hidden sibling folder to fill; on success it takes the place of `final` in one rename.

    An existing `final` stays in place, complete, until the new folder is complete: where the OS allows it the two
    are swapped in one step, so `final` is never missing; elsewhere it is missing only between two renames. On
    error the temporary folder is removed and `final` is untouched. A folder left by a killed process is named
    `.<name>.tmp-...`: hidden, it is never taken for an output.

    Args:
        final: the folder to write.
        marker: name of a file that marks the folders this package writes. When given, an existing `final` without
            it is refused (`NotOurFolderError`) before anything is written, so a folder of someone else's files is
            never deleted; the new folder gets it (a small JSON file, unless the caller wrote that file itself).
    """
    final = Path(final)
    if marker is not None:
        check_replaceable(final, marker)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        if marker is not None and not (tmp / marker).exists():
            (tmp / marker).write_text(json.dumps({"written_by": "latent-triplane-ns"}) + "\n")
        _fsync_tree(tmp)
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous version
        elif final.exists():
            old = temporary_sibling(final, "old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_file(final: Path, write: Callable[[Path], Any], staging: Optional[Path] = None) -> Path:
    """Writes a file through a hidden temporary file that `write(tmp_path)` fills, flushed, then renamed.

    Args:
        final: the file to write.
        write: fills the temporary file it is given.
        staging: the folder of the temporary file (on the same file system as `final`); by default `final`'s own.
            Give another where a reader lists `final`'s folder and takes every name in it for an output.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    if staging is not None:
        tmp = Path(staging) / tmp.name
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def write_json(path: Path, data: Any) -> Path:
    """Writes JSON atomically. Floats keep full precision."""
    return atomic_file(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))
