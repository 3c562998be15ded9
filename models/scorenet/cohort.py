"""Cohorts of whole slides scored on a Dask distributed cluster (``scorenet score-slides``).

Each slide is one task: a worker process opens it, scores its tissue with ``scorenet.wsi`` and writes
``scorenet.slide_export``'s files into ``OUT/.<name>.partial``, which is renamed to ``OUT/<name>``
once complete, so ``OUT/<name>/summary.json`` exists only for a finished slide. A worker that dies
mid-slide leaves at most a ``.partial`` folder, removed when the slide is tried again (the scheduler
reruns it on another worker). A slide that cannot be read or scored is a ``failed`` row of
``OUT/index.csv`` with a one-line error; it is not retried in the same run and the others go on.
A rerun skips the slides whose ``summary.json`` exists and tries the others again.

The model is loaded once per worker process (kept while the checkpoint file is unchanged). Each task
runs torch on a share of its machine's cores: the cores divided by the task slots of the machine's
workers, unless ``threads`` is given. Workers report RoI progress through Dask events
(``Worker.log_event``), which the client follows with ``Client.subscribe_topic``.

:func:`iter_score_cohort` is a long job of the ``scorenet.jobs`` protocol (events per finished slide
and per RoI update); :func:`score_cohort` runs it to its end. This module imports neither torch nor
distributed at import time, so the command's parser stays light. See docs/cohorts.md.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any

from . import atomic
from .errors import ScoreNetInputError, one_line
from .jobs import Job, Progress, ProgressFn, StopFn, check_stop, run_job
from .sample_data import sha256

log = logging.getLogger(__name__)

INDEX = "index.csv"
MANIFEST = "cohort.json"  # the settings the slides of OUT were scored with
SUMMARY = "summary.json"  # written last by scorenet.slide_export: its presence means the slide is done
STATUSES = ("done", "skipped", "failed")
INDEX_COLUMNS = ("slide", "out", "status", "error", "rois", "seconds")
# scorenet.wsi.SlideScoringConfig's defaults, here so that the parser imports no torch (tests hold them equal)
DEFAULT_ROI_SIZE = (1536, 2048)
DEFAULT_OVERLAP = 0.0
DEFAULT_MIN_TISSUE = 0.1
DEFAULT_BATCH_SIZE = 2
CONNECT_TIMEOUT = "10s"  # reaching an existing scheduler
EVENT_SECONDS = 0.5  # a worker reports a slide's RoIs at most this often
INDEX_SECONDS = 1.0  # the index is rewritten at most this often while slides finish (and at the end)
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class CohortOptions:
    """How every slide of a cohort is scored (plain values: they travel to the workers)."""

    checkpoint: str
    device: str = "auto"
    mpp: float | None = None
    magnification: float | None = None
    roi_size: tuple[int, int] = DEFAULT_ROI_SIZE
    overlap: float = DEFAULT_OVERLAP
    min_tissue: float = DEFAULT_MIN_TISSUE
    batch_size: int = DEFAULT_BATCH_SIZE
    threads: int | None = None  # torch threads per task; None: the machine's cores / its task slots
    top_per_class: int = 5

    def scoring_config(self) -> Any:
        """The ``scorenet.wsi.SlideScoringConfig`` of these options."""
        from .wsi import SlideScoringConfig

        return SlideScoringConfig(
            roi_size=(int(self.roi_size[0]), int(self.roi_size[1])), overlap=self.overlap,
            min_tissue=self.min_tissue, batch_size=self.batch_size, top_per_class=self.top_per_class,
        )  # fmt: skip

    def check(self) -> None:
        """Raise ``ScoreNetInputError`` for options that cannot be used (before any slide is read)."""
        if self.mpp is not None and self.magnification is not None:
            raise ScoreNetInputError("give a resolution in microns per pixel or a magnification, not both")
        for value, what in ((self.mpp, "microns per pixel"), (self.magnification, "magnification")):
            if value is not None and not value > 0:
                raise ScoreNetInputError(f"{what} must be a positive number, got {value}")
        if self.threads is not None and self.threads < 1:
            raise ScoreNetInputError(f"threads must be at least 1, got {self.threads}")
        self.scoring_config().check()

    def settings(self, class_names: Sequence[str], checkpoint_sha256: str) -> dict[str, Any]:
        """What the scores depend on: a rerun into the same folder must use the same."""
        return {
            "checkpoint_sha256": checkpoint_sha256,
            "class_names": list(class_names),
            "mpp": self.mpp,
            "magnification": self.magnification,
            "roi_size": [int(v) for v in self.roi_size],
            "overlap": self.overlap,
            "min_tissue": self.min_tissue,
        }


@dataclass(frozen=True)
class CohortSlide:
    """A slide of the cohort: its absolute path and its output folder's name under OUT."""

    path: str
    name: str


@dataclass
class CohortResult:
    """The rows of ``index.csv`` (finished slides, cohort order) and where they are."""

    out: Path
    index: Path
    slides: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Rows of this status (``done``, ``skipped``, ``failed``)."""
        return sum(row["status"] == status for row in self.rows)


# ---- the cohort's slides and their folders ---------------------------------------------------------


def cohort_slides(sources: Sequence[str | PathLike[str]], out: str | PathLike[str]) -> list[CohortSlide]:
    """Slides named by ``sources`` (files, folders searched recursively) and their folder names.

    A folder is named after the slide's file name without its suffix; slides of equal names get the
    name plus 8 hex digits of their path's hash. A folder already holding another slide's finished
    scores is never reused, and a slide keeps the folder it finished in, so reruns find their slides.
    """
    from .unlabelled import find_sources

    paths = [os.path.abspath(p) for p in find_sources(sources)]
    out = Path(out)
    stems = Counter(_stem(p) for p in paths)
    slides = []
    for path in paths:
        stem = _stem(path)
        owner = _summary_slide(out / stem)
        if owner == path or (owner is None and stems[stem] == 1):
            name = stem
        else:
            name = f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
        slides.append(CohortSlide(path, name))
    return slides


def _stem(path: str) -> str:
    return Path(path).stem.lstrip(".") or "slide"  # no hidden folder (temporary folders are hidden)


def _read_summary(folder: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _summary_slide(folder: Path) -> str | None:
    summary = _read_summary(folder)
    slide = None if summary is None else summary.get("slide")
    return os.path.abspath(slide) if isinstance(slide, str) else None


def _partial(out: Path, name: str) -> Path:
    return out / f".{name}.partial"


def finished_row(out: str | PathLike[str], slide: CohortSlide, status: str = "skipped") -> dict | None:
    """The index row of a slide whose ``summary.json`` exists in its folder, else None."""
    folder = Path(out) / slide.name
    summary = _read_summary(folder)
    if summary is None or _summary_slide(folder) != slide.path:
        return None
    fractions = summary.get("class_fractions") or {}
    return _row(slide, status, out=slide.name, rois=summary.get("rois_scored"), fractions=fractions)


def _row(slide: CohortSlide, status: str, **values: Any) -> dict[str, Any]:
    row = {"slide": slide.path, "out": "", "status": status, "error": "", "rois": None, "seconds": None,
           "fractions": {}, "note": None}  # fmt: skip
    row.update(values)
    return row


# ---- the task run on a worker ----------------------------------------------------------------------

_MODEL_LOCK = threading.Lock()
_MODEL: Any = None  # a ModelCache made on first use (the parser imports no torch)


def cached_model(checkpoint: str, device: str = "auto") -> tuple[Any, Any]:
    """The checkpoint's ``(model, info)``, loaded once per process and again when the file changes;
    a worker holds the model of the run it serves, no more."""
    global _MODEL
    from .model_cache import ModelCache

    with _MODEL_LOCK:
        if _MODEL is None:
            _MODEL = ModelCache(max_models=1)
    return _MODEL.get(checkpoint, device)


def score_cohort_slide(
    slide: CohortSlide,
    out: str,
    options: CohortOptions,
    slots_by_host: Mapping[str, int] | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """Score one slide into ``out/<name>/`` and return its index row (the Dask task).

    A slide that cannot be read or scored returns a ``failed`` row with a one-line error naming the
    file (not an exception: it would only fail again on another worker). Outputs are written into a
    hidden temporary folder renamed into place when complete; a dead attempt's folder is removed first.
    ``slots_by_host``: task slots of the cluster's workers per host, which share the host's cores.
    ``seconds`` of the row counts reading, scoring and writing (not loading the model).
    """
    out_dir = Path(out)
    final, partial = out_dir / slide.name, _partial(out_dir, slide.name)
    done = finished_row(out_dir, slide)
    if done is not None:
        return done
    for leftover in (partial, _stale(final)):  # a dead attempt's
        shutil.rmtree(leftover, ignore_errors=True)
    start = time.perf_counter()
    try:
        from .resolution import resolve_resolution
        from .slide import open_slide
        from .slide_export import write_slide_outputs
        from .wsi import score_slide

        model, info = cached_model(options.checkpoint, options.device)
        start = time.perf_counter()
        with open_slide(slide.path) as opened:
            resolution = resolve_resolution(
                opened, mpp=options.mpp, magnification=options.magnification,
                checkpoint_mpp=info.metadata.get("mpp"),
            )  # fmt: skip
            result = score_slide(
                model, opened, resolution=resolution, class_names=info.class_names,
                config=options.scoring_config(), device=options.device,
                threads=task_threads(options, slots_by_host), progress=_roi_reporter(topic, slide.name),
            )  # fmt: skip
        write_slide_outputs(partial, result, options.top_per_class)
        _publish(partial, final)
    except Exception as err:  # noqa: BLE001 - any error of one slide is that slide's failed row
        shutil.rmtree(partial, ignore_errors=True)
        return _row(slide, "failed", error=_error_text(slide.path, err), seconds=time.perf_counter() - start)
    return _row(
        slide, "done", out=slide.name, rois=len(result.tiles), fractions=result.class_fractions(),
        seconds=time.perf_counter() - start, note=resolution.note,
    )  # fmt: skip


def task_threads(options: CohortOptions, slots_by_host: Mapping[str, int] | None = None) -> int | None:
    """Torch threads of a task: ``options.threads``, else on a worker its host's cores divided by the
    task slots of the host's workers (its own worker's when the host is not in ``slots_by_host``);
    None off a worker (the thread policy's free cores)."""
    if options.threads is not None:
        return options.threads
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a worker (called in-process)
        return None
    from .threads import usable_cores

    slots = (slots_by_host or {}).get(_host(worker.address)) or worker.state.nthreads
    return max(1, usable_cores() // max(1, slots))


def _host(address: str) -> str:
    """``tcp://10.0.0.5:8786`` -> ``10.0.0.5``."""
    from distributed.comm import get_address_host

    return get_address_host(address)


def _roi_reporter(topic: str | None, name: str) -> ProgressFn | None:
    """Send a slide's RoI counts to the client as Dask events (at most every ``EVENT_SECONDS``)."""
    if topic is None:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = 0.0

    def report(event: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        if event.info.get("stage") == "planned" or event.done == event.total or now - last >= EVENT_SECONDS:
            last = now
            with contextlib.suppress(Exception):  # progress never fails a slide
                worker.log_event(topic, {"slide": name, "done": event.done, "total": event.total})

    return report


def _stale(final: Path) -> Path:
    return final.with_name(f".{final.name}.stale")


def _publish(partial: Path, final: Path) -> None:
    """Rename the finished ``partial`` folder to ``final`` (an unfinished ``final`` is replaced)."""
    if (final / SUMMARY).is_file():  # another attempt finished first: keep its files
        shutil.rmtree(partial, ignore_errors=True)
        return
    if final.exists():
        stale = _stale(final)
        shutil.rmtree(stale, ignore_errors=True)
        os.rename(final, stale)
        os.rename(partial, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.rename(partial, final)
    with contextlib.suppress(OSError, AttributeError):  # the rename on disk (POSIX)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _error_text(slide: str, err: BaseException) -> str:
    """One line naming the slide: the message of a ``ScoreNetInputError``, else type and message."""
    text = one_line(err)
    if not isinstance(err, ScoreNetInputError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if slide in text else f"{slide}: {text}"


# ---- the index -------------------------------------------------------------------------------------


class CohortIndex:
    """``OUT/index.csv``: one row per finished slide in cohort order, rewritten atomically."""

    def __init__(self, path: Path, class_names: Sequence[str], slides: Sequence[CohortSlide]) -> None:
        self.path = path
        self.class_names = [str(c) for c in class_names]
        self.order = {slide.path: i for i, slide in enumerate(slides)}
        self.rows: dict[str, dict[str, Any]] = {}
        self._written = 0.0
        self._dirty = True

    @property
    def columns(self) -> list[str]:
        return [*INDEX_COLUMNS, *(f"fraction_{c}" for c in self.class_names)]

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["slide"]] = row
        self._dirty = True

    def sorted_rows(self) -> list[dict[str, Any]]:
        return sorted(self.rows.values(), key=lambda row: self.order.get(row["slide"], len(self.order)))

    def text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.sorted_rows():
            fractions = row.get("fractions") or {}
            seconds = row.get("seconds")
            writer.writerow([
                row["slide"], row["out"], row["status"], row["error"],
                "" if row.get("rois") is None else int(row["rois"]),
                "" if seconds is None else f"{seconds:.2f}",
                *("" if fractions.get(c) is None else repr(float(fractions[c])) for c in self.class_names),
            ])  # fmt: skip
        return buffer.getvalue()

    def write(self, *, if_due: bool = False) -> None:
        """Rewrite the file (with ``if_due``, only when rows came and the last write is ``INDEX_SECONDS``
        old)."""
        now = time.monotonic()
        if if_due and (not self._dirty or now - self._written < INDEX_SECONDS):
            return
        atomic.atomic_write(self.path, self.text())
        self._written, self._dirty = now, False


def read_index(path: str | PathLike[str]) -> list[dict[str, str]]:
    """The rows of an ``index.csv`` as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---- the settings of OUT ---------------------------------------------------------------------------


def check_manifest(out: Path, settings: dict[str, Any], checkpoint: str) -> None:
    """Write ``OUT/cohort.json``, or check that a rerun uses the settings it records.

    Only finished slides bind a folder to its settings: without any, the file is replaced.
    """
    path = out / MANIFEST
    if path.is_file() and next(out.glob(f"*/{SUMMARY}"), None) is not None:
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ScoreNetInputError(
                f"unreadable {MANIFEST}; remove it to score into this folder", out
            ) from None
        differ = sorted(k for k in set(settings) | set(recorded) if settings.get(k) != recorded.get(k))
        if differ:
            raise ScoreNetInputError(
                f"these slides were scored with other settings ({', '.join(differ)}; see {MANIFEST}); "
                "give another --out, or the same settings to resume",
                out,
            )
        return
    atomic.atomic_write(path, json.dumps({"checkpoint": os.path.abspath(checkpoint), "settings": settings},
                                         indent=2))  # fmt: skip


# ---- the cluster -----------------------------------------------------------------------------------


def default_workers(device: str = "auto") -> int:
    """Worker processes of a local cluster: half the cores on a CPU (2 torch threads each); one on a GPU."""
    from .inference import resolve_device
    from .threads import usable_cores

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, usable_cores() // 2)


@contextlib.contextmanager
def cohort_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` of an existing scheduler, or of a new ``LocalCluster`` of ``workers``
    single-threaded worker processes; closed (with the local cluster) on leaving.

    Unless logging is at INFO (``scorenet -v``), distributed logs warnings only, here and in the
    local cluster's workers.
    """
    import distributed

    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    noisy, nanny = logging.getLogger("distributed"), logging.getLogger("distributed.nanny")
    levels = noisy.level, nanny.level
    if quiet:  # its records reach the root logger's handler too
        noisy.setLevel(logging.WARNING)
    cluster = None
    stack = contextlib.ExitStack()
    try:
        if scheduler:
            try:
                client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as err:
                raise ScoreNetInputError(
                    f"cannot reach the Dask scheduler at {scheduler} ({one_line(err)})"
                ) from None
        else:
            stack.enter_context(fast_worker_start())
            cluster = distributed.LocalCluster(
                n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.WARNING if quiet else False,
            )  # fmt: skip
            client = distributed.Client(cluster)
            # Ctrl-C reaches the workers too (one process group): the client closes them instead
            client.register_plugin(_ignore_interrupts())
        try:
            yield client
        finally:
            with _no_interrupts():  # a second Ctrl-C does not leave the cluster half closed
                with contextlib.suppress(Exception):
                    client.close()
                if cluster is not None:
                    # a worker slow to unload torch at exit is killed after 4 s, with a warning that is noise
                    if quiet:
                        nanny.setLevel(logging.ERROR)
                    with contextlib.suppress(Exception):
                        cluster.close()
    finally:
        stack.close()
        noisy.setLevel(levels[0])
        nanny.setLevel(levels[1])


# what a worker imports to score a slide: imported once, in the process its siblings fork from
WORKER_MODULES = ("distributed", "numpy", "torch", "scorenet.cohort", "scorenet.wsi", "scorenet.slide_export")


@contextlib.contextmanager
def fast_worker_start() -> Iterator[None]:
    """Start (and restart) local workers by forking a server process that has imported
    ``WORKER_MODULES`` once, instead of each worker importing torch on its own (seconds of CPU per
    worker, all at the same time). Where there is no ``forkserver`` (Windows), nothing changes.

    For local clusters created in the block (``distributed.LocalCluster``), and their restarts while
    it lasts; the server's modules are those of the first block of the process.
    """
    import multiprocessing

    import dask

    if "forkserver" not in multiprocessing.get_all_start_methods():
        yield
        return
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        from distributed.utils import get_mp_context

        get_mp_context().set_forkserver_preload(list(WORKER_MODULES))  # after distributed sets its own
        yield


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C in the block (in the main thread; elsewhere nothing changes)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ignore_interrupts() -> Any:
    """A worker plugin ignoring SIGINT in the local cluster's worker processes (restarted ones too)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        name = "scorenet-ignore-interrupts"

        def setup(self, worker: Any) -> None:
            import signal

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


def slots_by_host(client: Any) -> dict[str, int]:
    """Task slots (worker threads) of the connected workers, summed per host."""
    slots: Counter[str] = Counter()
    for address, nthreads in client.nthreads().items():
        slots[_host(address)] += nthreads
    return dict(slots)


def check_workers_see(client: Any, checkpoint: str) -> None:
    """Raise ``ScoreNetInputError`` when a connected worker cannot read the checkpoint file."""
    seen = client.run(os.access, checkpoint, os.R_OK)
    blind = sorted(address for address, ok in seen.items() if not ok)
    if blind:
        raise ScoreNetInputError(
            f"worker {blind[0]}{f' and {len(blind) - 1} more' if len(blind) > 1 else ''} cannot read "
            "the checkpoint; workers need the checkpoint and slides at the same paths as here",
            checkpoint,
        )


# ---- the job ---------------------------------------------------------------------------------------


def score_cohort(
    sources: Sequence[str | PathLike[str]], out: str | PathLike[str], options: CohortOptions, *,
    progress: ProgressFn | None = None, **kwargs: Any,
) -> CohortResult:  # fmt: skip
    """Score a cohort: :func:`iter_score_cohort` run to its end."""
    return run_job(iter_score_cohort(sources, out, options, **kwargs), progress)


def iter_score_cohort(
    sources: Sequence[str | PathLike[str]],
    out: str | PathLike[str],
    options: CohortOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    should_stop: StopFn | None = None,
) -> Job[CohortResult]:
    """Score the slides of ``sources`` into ``out`` on a Dask cluster, yielding ``Progress`` per slide.

    Events count slides (``job`` "score-slides", ``unit`` "slide"). ``info["stage"]`` is "slide" with
    the finished slide's index ``row``, "start" (``pending`` slides) once the finished ones are
    counted and the cluster is up, or "rois" with ``rois_done`` and ``rois_total`` over the
    slides started so far. ``workers``: processes of a new local cluster (default
    :func:`default_workers`); ``scheduler``: the address of an existing one instead. Bad input (no
    slides, a bad checkpoint, settings unlike those ``out`` was scored with, a device this machine
    lacks for a local cluster, a scheduler that cannot be reached, a worker that cannot read the
    checkpoint) raises ``ScoreNetInputError`` before scoring. Interrupted or stopped, it keeps the
    index of the slides finished so far and closes the client (and the local cluster).
    """
    from .atomic import writable_folder
    from .checkpoint import read_checkpoint_info

    out_dir = writable_folder(out)
    options = replace(options, checkpoint=os.path.abspath(options.checkpoint))
    options.check()
    info = read_checkpoint_info(options.checkpoint)
    slides = cohort_slides(sources, out_dir)
    check_manifest(
        out_dir, options.settings(info.class_names, sha256(options.checkpoint)), options.checkpoint
    )
    index = CohortIndex(out_dir / INDEX, info.class_names, slides)
    result = CohortResult(out_dir, index.path, len(slides))

    def finish(row: dict[str, Any]) -> Progress:
        index.add(row)
        return Progress("score-slides", len(index.rows), len(slides), "slide", {"stage": "slide", "row": row})

    pending = []
    for slide in slides:
        row = finished_row(out_dir, slide)
        if row is None:
            pending.append(slide)
        else:
            yield finish(row)
    index.write()
    result.rows = index.sorted_rows()
    if not pending:
        return result
    if scheduler is None:  # the workers are this machine's: a device it lacks is bad input
        from .inference import resolve_device

        resolve_device(options.device)
        workers = workers or default_workers(options.device)
    with cohort_client(workers, scheduler) as client:
        import distributed

        check_workers_see(client, options.checkpoint)
        if not client.nthreads():
            log.warning("no Dask workers are connected yet; the slides wait for workers to join")
        slots = slots_by_host(client)
        yield Progress(
            "score-slides", len(index.rows), len(slides), "slide", {"stage": "start", "pending": len(pending)}
        )
        run = uuid.uuid4().hex[:8]
        topic = f"scorenet-cohort-{run}"
        events: queue.SimpleQueue = queue.SimpleQueue()
        client.subscribe_topic(topic, events.put)
        futures = {
            client.submit(score_cohort_slide, slide, str(out_dir), options, slots, topic,
                          key=f"score-slide-{slide.name}-{run}", pure=False, retries=2): slide
            for slide in pending
        }  # fmt: skip
        completed = distributed.as_completed(futures)
        rois: dict[str, tuple[int, int]] = {}  # (done, total) of each slide started
        ended: set[str] = set()  # slides whose row is in: their counts are final
        try:
            while not completed.is_empty():
                check_stop(
                    should_stop, f"cohort stopped after {len(index.rows)} of {len(slides)} slides", result
                )
                batch = completed.next_batch(block=False)
                changed = _drain(events, rois, ended)
                rows = [_future_row(future, futures[future], out_dir) for future in batch]
                finished = [finish(row) for row in rows]  # in the index before any event goes out
                for future, row in zip(batch, rows, strict=True):
                    name = futures[future].name
                    ended.add(name)
                    rois.pop(name, None)  # a failed slide's RoIs are not counted
                    if row["status"] != "failed":  # the row's count, not the last event's (events lag)
                        rois[name] = (int(row["rois"] or 0), int(row["rois"] or 0))
                    changed = True
                if changed and rois:
                    done, total = (sum(v) for v in zip(*rois.values(), strict=True))
                    yield Progress("score-slides", len(index.rows), len(slides), "slide",
                                   {"stage": "rois", "rois_done": done, "rois_total": total})  # fmt: skip
                yield from finished
                index.write(if_due=True)
                if not batch:
                    time.sleep(POLL_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
            index.write()
            result.rows = index.sorted_rows()  # also for a Cancelled's partial
    return result


def _drain(events: queue.SimpleQueue, rois: dict[str, tuple[int, int]], ended: set[str]) -> bool:
    """Take the workers' RoI events: the latest ``(done, total)`` of each slide still running (a
    retried slide starts again from 0). True if any came."""
    changed = False
    while True:
        try:
            _, message = events.get_nowait()
        except queue.Empty:
            return changed
        with contextlib.suppress(KeyError, TypeError, ValueError):
            if message["slide"] not in ended:
                rois[message["slide"]] = (int(message["done"]), int(message["total"] or 0))
                changed = True


def _future_row(future: Any, slide: CohortSlide, out: Path) -> dict[str, Any]:
    """A finished task's row; a task that did not finish (its workers died) is a failed row."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - KilledWorker, a lost connection: that slide failed
        shutil.rmtree(_partial(out, slide.name), ignore_errors=True)
        return _row(slide, "failed", error=_error_text(slide.path, err))
