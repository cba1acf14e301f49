"""Atomic file writes: nothing half-written is ever left where the user's file should be.

A writer gets a temporary path in the *same directory* as the target (so the final rename never
crosses a file system and is atomic), writes it completely, and only then is the temporary file
moved onto the target with :func:`os.replace`. If the writer raises, the temporary file is removed
and an existing target is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_writable_target", "write_text_atomic"]


def check_writable_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Return ``path`` as a Path after checking it may be written.

    Raises
    ------
    FileExistsError
        When the file exists and ``overwrite`` is False.
    ValueError
        When the path names an existing directory.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target}: is a directory; expected a file path to write")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: file exists; pass overwrite=True to replace it")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or PathLike
        Final file location. Missing parent directories are created.
    overwrite : bool
        Replace an existing file. When False an existing file raises ``FileExistsError`` before
        anything is written, and again (without clobbering) if one appeared during the write.

    Yields
    ------
    Path
        A not-yet-existing temporary path in the target's directory, with the target's suffix
        (so libraries that look at suffixes behave the same). The block must create it.
    """
    target = check_writable_target(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name, same suffix: np.savez/h5py see the same extension as the final file.
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{target}: the writer did not create the temporary file {tmp}")
        # Flush to disk before the rename so a crash cannot leave a renamed-but-empty file.
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            # os.link refuses to clobber, closing the race between the check above and now.
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FileExistsError(
                    f"{target}: file appeared while writing; pass overwrite=True to replace it"
                ) from None
            except OSError:
                # File systems without hard links: fall back to a checked replace.
                if target.exists():
                    raise FileExistsError(
                        f"{target}: file exists; pass overwrite=True to replace it") from None
                os.replace(tmp, target)
            else:
                os.unlink(tmp)
    finally:
        # Whatever happened, no temporary file is left behind.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
