"""Model cache, default checkpoint and device choice shared by the widgets."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from scorenet.checkpoint import load_checkpoint
from scorenet.inference import resolve_device

_MODELS: dict[tuple[str, str], tuple] = {}


def default_checkpoint_path() -> Path:
    """The bundled demo checkpoint (may be absent in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "weights" / "scorenet_demo.safetensors"


def missing_checkpoint_message(path: str | Path) -> str:
    """Why ``path`` cannot be used, saying so plainly when it is the bundled one."""
    if Path(path).resolve() == default_checkpoint_path():
        return f"{path}: the bundled demo checkpoint is not installed; choose a checkpoint file"
    return f"{path}: checkpoint not found"


def cached_model(path: str | Path, device: str = "auto"):
    """(model, info) loaded once per (path, device); raises the checkpoint's input error otherwise."""
    dev = resolve_device(device)
    key = (str(Path(path).resolve()), str(dev))
    if key not in _MODELS:
        model, info = load_checkpoint(path, map_location=dev)
        _MODELS[key] = (model.to(dev).eval(), info)
    return _MODELS[key]


_DONE = object()


def relay_progress(run: Callable[..., Any], **kwargs: Any) -> Generator[Any, None, Any]:
    """Run ``run(progress=..., **kwargs)`` on a thread and yield each progress event; return its result.

    Used as the body of a generator ``thread_worker`` so the events reach the GUI as yielded values.
    """
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run(progress=events.put, **kwargs)
        except BaseException as err:  # re-raised in the worker, which reports it to the GUI
            outcome["error"] = err
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while (event := events.get()) is not _DONE:
        yield event
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
