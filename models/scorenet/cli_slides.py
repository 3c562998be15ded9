"""``scorenet score-slides``: whole slides and cohorts scored on a Dask distributed cluster."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from .cli_options import add_device, add_resolution, positive_int
from .cohort import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MIN_TISSUE,
    DEFAULT_OVERLAP,
    DEFAULT_ROI_SIZE,
    INDEX,
    MANIFEST,
)
from .jobs import Progress

EXIT_SLIDES_FAILED = 1  # the cohort ran to its end, but some slides failed (see the index)

SCORE_SLIDES_HELP = (
    "Score whole slides on a Dask distributed cluster: by default a local cluster of --workers "
    "processes, each loading the model once and running torch on its share of the cores; with "
    "--scheduler an existing cluster. Per slide OUT/<name>/ holds tiles.geojson, tiles.csv, tiles.npz, "
    f"tissue_mask.png and summary.json (written last); OUT/{INDEX} has a row per finished slide "
    "(slide, out, status done|skipped|failed, error, rois, seconds, fraction_<class>...) and "
    f"OUT/{MANIFEST} the settings. A rerun skips finished slides. An unreadable slide is a failed row "
    "and the others go on; a slide whose worker dies is retried on another. Exit 0 when every slide is "
    "done, 1 when some failed, 2 for bad input, 130 when interrupted. See docs/cohorts.md."
)


def add_score_slides(sub: argparse._SubParsersAction) -> None:
    """Register the ``score-slides`` sub-command."""
    p = sub.add_parser(
        "score-slides", help="score whole slides and cohorts on a Dask cluster", description=SCORE_SLIDES_HELP
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SLIDE_OR_FOLDER",
                   help="slides, or folders searched recursively for slides")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="cohort folder (a folder per slide, index.csv)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="worker processes of the local cluster (default: half the cores, at least 1; "
                       "1 on a GPU)")  # fmt: skip
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use the Dask cluster of this scheduler, e.g. tcp://host:8786, instead of a "
                       "local one")  # fmt: skip
    add_device(p)
    add_resolution(p, "; with it, a slide that records no pixel size is a failed row")
    p.add_argument("--roi-size", type=positive_int, nargs=2, default=DEFAULT_ROI_SIZE, metavar=("H", "W"),
                   help="RoI (model input) size in pixels at the read resolution "
                   "(default: {} {})".format(*DEFAULT_ROI_SIZE))  # fmt: skip
    p.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                   help="share of an RoI's side shared with its neighbour, in [0, 0.9] "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--min-tissue", type=float, default=DEFAULT_MIN_TISSUE,
                   help="least tissue share of a scored RoI (default: %(default)s)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help="RoIs per forward pass (default: %(default)s)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads of each slide's task (default: the machine's cores divided by the "
                   "task slots of its workers)")  # fmt: skip
    p.set_defaults(func=run_score_slides)


class _CohortBars:
    """Two tqdm bars on stderr: slides finished, and RoIs scored on the slides started so far."""

    def __init__(self) -> None:
        self.slides: Any = None
        self.rois: Any = None

    def update(self, event: Progress) -> None:
        """Show a ``score-slides`` event; failed slides and resolution notes as lines above the bars."""
        from tqdm.auto import tqdm

        if self.slides is None:
            self.slides = tqdm(total=event.total, desc="slides", unit="slide", file=sys.stderr, position=0)
            self.rois = tqdm(total=0, desc="RoIs", unit="RoI", file=sys.stderr, position=1)
        info = event.info
        if info.get("stage") == "start":
            self.slides.n = event.done
            self.slides.refresh()
            return
        if info.get("stage") == "rois":
            self.rois.total = info["rois_total"]
            self.rois.n = info["rois_done"]
            self.rois.refresh()
            return
        row = info["row"]
        if row["status"] == "failed":
            tqdm.write(f"failed: {row['error']}", file=sys.stderr)
        elif row.get("note"):
            logging.warning("%s", row["note"])
        self.slides.n = event.done
        self.slides.set_postfix(slide=Path(row["slide"]).name, refresh=False)
        self.slides.refresh()

    def __enter__(self) -> _CohortBars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in (self.rois, self.slides):
            if bar is not None:
                bar.close()


def run_score_slides(args: argparse.Namespace) -> int:
    """Run ``scorenet score-slides``; prints a JSON summary on stdout."""
    from .cli import EXIT_OK
    from .cohort import CohortOptions, score_cohort

    options = CohortOptions(
        checkpoint=str(args.checkpoint), device=args.device, mpp=args.mpp, magnification=args.magnification,
        roi_size=tuple(args.roi_size), overlap=args.overlap, min_tissue=args.min_tissue,
        batch_size=args.batch_size, threads=args.threads,
    )  # fmt: skip
    start = time.perf_counter()
    with _CohortBars() as bars:
        result = score_cohort(
            args.sources, args.out, options, workers=args.workers, scheduler=args.scheduler,
            progress=bars.update,
        )  # fmt: skip
    summary = {
        "index": str(result.index),
        "slides": result.slides,
        **{status: result.count(status) for status in ("done", "skipped", "failed")},
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary, indent=2))
    failed = result.count("failed")
    if failed:
        print(f"scorenet score-slides: {failed} of {result.slides} slides failed; see {result.index}",
              file=sys.stderr)  # fmt: skip
        return EXIT_SLIDES_FAILED
    return EXIT_OK
