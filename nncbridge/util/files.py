"""Atomic file output: readers never see a half-written file under the final name, nor the files
of a run that failed."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Union

PathLike = Union[str, "os.PathLike[str]"]


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes files readable by their owner only; outputs get the mode open() would give them.
_NEW_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_output(path: PathLike, mode: str = "wb", encoding: str | None = None,
                  newline: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path``; rename it over ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        os.chmod(tmp, _NEW_FILE_MODE)
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_output(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def staging_folder(parent: PathLike) -> Iterator[str]:
    """A new hidden folder in ``parent`` for files a run writes before it is done; it is removed on
    the way out, with whatever is still in it (everything, if the run failed)."""
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".nncbridge-", suffix=".partial", dir=parent)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into(staging: PathLike, target: PathLike) -> None:
    """Move the subfolders of ``staging`` into ``target``: whole when new there, else file by file
    (replacing files of the same name)."""
    for sub in sorted(os.listdir(staging)):
        source, destination = os.path.join(staging, sub), os.path.join(target, sub)
        if not os.path.lexists(destination):
            os.replace(source, destination)
            continue
        for name in os.listdir(source):
            os.replace(os.path.join(source, name), os.path.join(destination, name))
