"""Checkpoints loaded once per process and again when their file changes (retrained at the same path).

The napari widgets keep one model per checkpoint and device; a cohort worker keeps only the last one
(``max_models=1``), so a long-lived worker serving several runs holds a single model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from pathlib import Path

from .checkpoint import CheckpointInfo, load_checkpoint
from .inference import resolve_device
from .model import ScoreNet

Stamp = tuple[int, int, int]  # the file's (inode, mtime in ns, size) when it was loaded


class ModelCache:
    """``(model, info)`` by (resolved path, device), each stamped with its file's (inode, mtime, size)."""

    def __init__(self, max_models: int | None = None) -> None:
        self.max_models = max_models
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[Stamp | None, tuple[ScoreNet, CheckpointInfo]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str | os.PathLike[str], device: str = "auto") -> tuple[ScoreNet, CheckpointInfo]:
        """The checkpoint's ``(model, info)`` on ``device``, loaded again only when the file has changed;
        raises the checkpoint's input error (and caches nothing) when it cannot be loaded."""
        target = resolve_device(device)
        resolved = Path(path).resolve()
        key = (str(resolved), str(target))
        try:
            st = resolved.stat()
            # an atomic save is a new inode; mtime and size also catch a file rewritten in place
            stamp: Stamp | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None  # load_checkpoint names the problem
        with self._lock:
            cached = self._entries.get(key)
            if cached is None or stamp is None or cached[0] != stamp:
                self._entries.pop(key, None)  # free the old model before loading its replacement
                if self.max_models is not None and len(self._entries) >= self.max_models:
                    self._entries.clear()
                model, info = load_checkpoint(path, map_location=target)
                self._entries[key] = (stamp, (model.to(target).eval(), info))
            return self._entries[key][1]
