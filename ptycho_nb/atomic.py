"""Atomic file writes: nothing half-written is ever left where the user's file should be.

A writer gets a temporary path in the *same directory* as the target (so the final rename never
crosses a file system and is atomic), writes it completely, and only then is the temporary file
moved onto the target with :func:`os.replace`. If the writer raises, the temporary file is removed
and an existing target is left untouched.

Several files that belong together (a reconstruction's npz + product + figure, a ptychodus
product + diffraction pair) go through :func:`atomic_files`: all are written into one hidden
staging folder beside the targets and moved into place only once every one of them is complete;
a failure while moving them puts the old files back, so the set appears whole or not at all.

Written files get the mode any new file of this process would get (``0o666`` less the umask);
replacing a file keeps that file's mode.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["atomic_path", "atomic_files", "check_writable_target", "write_text_atomic",
           "new_file_mode"]

#: errno values that mean "the device has no room for this file".
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}

_umask_lock = threading.Lock()
_umask: int | None = None


def new_file_mode() -> int:
    """Permission bits a newly created file gets in this process (``0o666 & ~umask``).

    The umask can only be read by setting it, so it is read once (under a lock) and cached:
    reading it again while other threads create files would briefly give them umask 0.
    """
    global _umask
    with _umask_lock:
        if _umask is None:
            old = os.umask(0)
            os.umask(old)
            _umask = old
    return 0o666 & ~_umask


def check_writable_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Return ``path`` as a Path after checking it may be written.

    Raises
    ------
    FileExistsError
        When the file exists and ``overwrite`` is False.
    ValueError
        When the path is empty or names an existing directory or other non-regular file.
    """
    if os.fspath(path) == "":
        raise ValueError("output path is empty; expected a file path to write")
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target}: is a directory; expected a file path to write")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: file exists; pass overwrite=True to replace it")
    if target.exists() and not target.is_file():
        raise ValueError(f"{target}: exists and is not a regular file (a FIFO, device or socket); "
                         "expected a file path to write")
    return target


def _errno_of(exc: BaseException) -> int | None:
    """The errno of an OSError, or the one HDF5 puts in a RuntimeError's text (h5py reports
    failed writes as ``RuntimeError(... errno = 28 ...)``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    match = re.search(r"errno = (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _no_room_error(exc: BaseException, target: Path) -> BaseException:
    """A disk-full style error re-worded as an OSError naming the file; other errors unchanged."""
    code = _errno_of(exc)
    if code in _NO_ROOM:
        return OSError(code, f"{target}: no space left on the device (or file-size limit "
                             f"reached) while writing it; nothing was written there "
                             f"({os.strerror(code)}). Free some space or choose another folder")
    return exc


def _finish(tmp: Path, target: Path) -> None:
    """fsync ``tmp`` and give it the mode the target should have."""
    # Flush to disk before the rename so a crash cannot leave a renamed-but-empty file.
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    try:
        mode = stat.S_IMODE(target.stat().st_mode)  # replacing: keep the user's mode
    except FileNotFoundError:
        mode = new_file_mode()
    os.chmod(tmp, mode)


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

    Raises
    ------
    OSError
        A full device (ENOSPC, EDQUOT, EFBIG) is reported naming ``path``.
    """
    target = check_writable_target(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name, same suffix: np.savez/h5py see the same extension as the final file.
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}"
    try:
        try:
            yield tmp
            if not tmp.exists():
                raise RuntimeError(f"{target}: the writer did not create the temporary file {tmp}")
            _finish(tmp, target)
        except (OSError, RuntimeError) as exc:
            new = _no_room_error(exc, target)
            if new is exc:
                raise
            raise new from exc
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


@contextlib.contextmanager
def atomic_files(paths: Mapping[str, str | os.PathLike[str]], overwrite: bool = False
                 ) -> Iterator[dict[str, Path]]:
    """Write several files that belong together: all of them appear, or none changes.

    Parameters
    ----------
    paths : mapping of key → path
        Final locations, all in one folder (created when missing).
    overwrite : bool
        Replace existing files; otherwise ``FileExistsError`` naming the first existing one,
        before anything is written.

    Yields
    ------
    dict of key → Path
        Temporary paths (same file names) inside a hidden staging folder beside the targets;
        the block must create every one of them.

    Notes
    -----
    The staging folder lies in the targets' folder, so every move is a rename on one file
    system. Old files are kept as hard links until every new file is in place; if a move fails
    the old files are put back and the new ones removed. Only a crash in the middle of the
    moves (microseconds) could leave a mixed set.
    """
    targets = {k: check_writable_target(p, overwrite) for k, p in paths.items()}
    if not targets:
        raise ValueError("atomic_files: no paths given")
    parents = {t.parent.resolve() if t.parent.exists() else t.parent.absolute()
               for t in targets.values()}
    if len(parents) != 1:
        raise ValueError(f"atomic_files: the files must share one folder, got {sorted(map(str, parents))}")
    names = [t.name for t in targets.values()]
    if len(set(names)) != len(names):
        raise ValueError(f"atomic_files: file names repeat: {names}")
    folder = next(iter(targets.values())).parent
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f".{names[0]}.{uuid.uuid4().hex[:12]}.tmpdir"
    stage.mkdir()
    try:
        tmps = {k: stage / t.name for k, t in targets.items()}
        current: Path | None = None
        try:
            yield dict(tmps)
            for k, tmp in tmps.items():
                current = targets[k]
                if not tmp.exists():
                    raise RuntimeError(f"{current}: the writer did not create the temporary "
                                       f"file {tmp}")
                _finish(tmp, current)
        except (OSError, RuntimeError) as exc:
            if current is None:  # failed inside the writer: name the file whose write failed
                text = str(exc)
                current = next((targets[k] for k, t in tmps.items() if str(t) in text
                                or f".{t.name}." in text), None)
            new = _no_room_error(exc, current if current is not None
                                 else folder / f"{{{', '.join(names)}}}")
            if new is exc:
                raise
            raise new from exc
        _commit(targets, tmps, stage, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _commit(targets: Mapping[str, Path], tmps: Mapping[str, Path], stage: Path,
            overwrite: bool) -> None:
    """Move every staged file onto its target; on any failure restore the previous state."""
    backups: dict[str, Path] = {}
    placed: list[str] = []
    try:
        for k, target in targets.items():
            if target.exists():
                if not overwrite:
                    raise FileExistsError(f"{target}: file appeared while writing; pass "
                                          "overwrite=True to replace it")
                backups[k] = stage / f".old.{target.name}"
                try:
                    os.link(target, backups[k])  # the old file stays in place until replaced
                except OSError:
                    shutil.copy2(target, backups[k])  # file systems without hard links
        for k, target in targets.items():
            if overwrite:
                os.replace(tmps[k], target)
            else:
                try:
                    os.link(tmps[k], target)  # refuses to clobber a file that appeared meanwhile
                except FileExistsError:
                    raise FileExistsError(f"{target}: file appeared while writing; pass "
                                          "overwrite=True to replace it") from None
                except OSError:
                    if target.exists():
                        raise FileExistsError(f"{target}: file exists; pass overwrite=True to "
                                              "replace it") from None
                    os.replace(tmps[k], target)
            placed.append(k)
    except BaseException:
        for k in placed:
            with contextlib.suppress(OSError):
                if k in backups:
                    os.replace(backups[k], targets[k])
                else:
                    os.unlink(targets[k])
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
