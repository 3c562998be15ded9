"""Atomic file writes: a reader never sees a half-written checkpoint, log or export."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# mkstemp creates files readable by the owner only; finished files get the usual permissions instead
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic on POSIX and
    Windows. On error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    mode = path.stat().st_mode & 0o777 if path.exists() else _FILE_MODE
    try:
        yield tmp_path
        # after the block: a writer may replace the temporary file (safetensors does), losing its mode
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically and return the path."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` as a folder if needed and check that files can be written in it.

    Called before long work whose results go there, so a bad ``--out`` fails first, not after the run.
    """
    from .errors import ScoreNetInputError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ScoreNetInputError("output path is a file, not a folder", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ScoreNetInputError(f"cannot write in this folder ({err.strerror or err})", path) from None
    return path
