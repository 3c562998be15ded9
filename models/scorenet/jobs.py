"""One protocol for long jobs: scoring, training, evaluation and pre-training.

Each job is a generator (``iter_score_rois``, ``iter_train``, ``iter_evaluate``, ``iter_pretrain``)
that yields :class:`Progress` events and returns its result. The plain functions (``score_rois``,
``train``, ...) drive it with :func:`run_job`; napari widgets run the generator itself in a
``thread_worker`` and connect its ``yielded`` signal, so events reach the GUI thread without a relay.
A job asks ``should_stop()`` between units of work; when it answers True the job raises
:class:`Cancelled` (training first keeps its last finished epoch and returns ``stopped=True``).

Torch-free, so the CLI and widgets can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of a job (``total`` None when unknown), with the job's figures.

    ``info`` holds what a job reports besides the count: ``epoch``, ``loss``, ``lr`` and, at an
    epoch's end, ``epoch_end`` and the validation metrics for training; ``stage`` for scoring.
    """

    job: str  # "score", "train", "evaluate", "pretrain"
    done: int
    total: int | None
    unit: str  # what is counted: "RoI", "step", "image", ...
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], None when the total is unknown."""
        return None if not self.total else min(1.0, self.done / self.total)

    def describe(self) -> str:
        """``train: 12/40 steps``, for status lines."""
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.job}: {self.done}{of} {self.unit}s"


class Cancelled(Exception):
    """A job stopped because ``should_stop()`` returned True; ``partial`` holds what it had finished."""

    def __init__(self, message: str = "cancelled", partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]
Job = Generator[Progress, None, R]


def run_job(job: Job[R], progress: ProgressFn | None = None) -> R:
    """Drive ``job`` to its end, handing each event to ``progress``; return the job's result.

    A Ctrl-C that lands in ``progress`` is passed into the job, so it stops as if it had landed
    in the job's own code (training then keeps its last epoch).
    """
    pending: BaseException | None = None
    while True:
        try:
            event = job.throw(pending) if pending is not None else next(job)
        except StopIteration as stop:
            return stop.value
        pending = None
        if progress is not None:
            try:
                progress(event)
            except KeyboardInterrupt as interrupt:
                pending = interrupt


def check_stop(should_stop: StopFn | None, message: str, partial: Any = None) -> None:
    """Raise :class:`Cancelled` when ``should_stop()`` says so."""
    if should_stop is not None and should_stop():
        raise Cancelled(message, partial)
