"""``scorenet score-slides``: cohorts of real slides on Dask distributed clusters (local and existing).

One cluster of two worker processes serves the tests that pass ``--scheduler`` (its workers load the
model once for all of them); the first test starts its own ``LocalCluster`` through ``--workers 2``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from distributed import WorkerPlugin
from scorenet import cli_slides, cohort
from scorenet.checkpoint import save_checkpoint
from scorenet.cli import main
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.model import build_model
from scorenet.slide_export import FILES
from scorenet.wsi import SlideScoringConfig

CMU, TCGA = "cmu_small_region.svs", "tcga-cr-7395-01a-01-ts1.svs"
CLASSES = ["carcinoma", "stroma"]
FAST = ["--roi-size", "512", "512"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cohort-model") / "model.safetensors"
    save_checkpoint(build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES), path, CLASSES)
    return path


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cohort-bad") / "corrupt.svs"
    path.write_bytes(b"not a slide")
    return path


@pytest.fixture(scope="module")
def crash_marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file is missing, the next slide's worker dies after writing its temporary folder."""
    marker = tmp_path_factory.mktemp("cohort-crash") / "crashed"
    marker.touch()
    return marker


class CrashOnceWhilePublishing(WorkerPlugin):
    """Worker plugin: while ``marker`` is missing, the next slide about to be published kills its
    worker process (creating the marker first), leaving a half-written file in the slide's temporary
    folder, as a worker killed while writing would."""

    name = "crash-once-while-publishing"

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def setup(self, worker: object) -> None:
        import os

        from scorenet import cohort as worker_cohort

        publish, marker = worker_cohort._publish, self.marker

        def die_once(partial: Path, final: Path) -> None:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return publish(partial, final)
            (partial / ".tiles.npz.half-written.tmp").write_bytes(b"PK")
            os._exit(1)

        worker_cohort._publish = die_once


@pytest.fixture(scope="module")
def scheduler(crash_marker: Path) -> Iterator[str]:
    """An existing cluster: two single-threaded worker processes, as ``dask worker`` would start."""
    from distributed import Client, LocalCluster

    with (
        cohort.fast_worker_start(),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
    ):
        with Client(cluster) as client:  # the scheduler keeps the plugin for restarted workers too
            client.register_plugin(CrashOnceWhilePublishing(str(crash_marker)))
        yield cluster.scheduler_address


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, dict, str]:
    code = main(["score-slides", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _index(out: Path) -> dict[str, dict[str, str]]:
    rows = cohort.read_index(out / "index.csv")
    return {Path(row["slide"]).name: row for row in rows}


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def _check_slide_folder(folder: Path, row: dict[str, str]) -> None:
    """Every file is there and summary.json, tiles.csv, tiles.npz and the index row agree."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    summary = json.loads((folder / "summary.json").read_text())
    with open(folder / "tiles.csv", newline="") as fh:
        tiles = list(csv.DictReader(fh))
    assert summary["complete"] and summary["rois_scored"] == summary["rois_planned"] == len(tiles) > 0
    assert int(row["rois"]) == len(tiles)
    area = {c: 0.0 for c in CLASSES}
    for tile in tiles:
        area[tile["predicted"]] += float(tile["tissue"]) * int(tile["w"]) * int(tile["h"])
    for c in CLASSES:
        expected = area[c] / sum(area.values())
        assert summary["class_fractions"][c] == pytest.approx(expected)
        assert float(row[f"fraction_{c}"]) == pytest.approx(expected)
    arrays = np.load(folder / "tiles.npz")
    assert arrays["probabilities"].shape == (len(tiles), len(CLASSES))


def _mtimes(out: Path, names: list[str]) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for name in names for p in (out / name).iterdir()}


def test_cohort_on_a_local_cluster_then_resumed(
    checkpoint: Path, corrupt: Path, slides_dir: Path, scheduler: str, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cohort"
    sources = [str(slides_dir / CMU), str(slides_dir / TCGA), str(corrupt)]
    argv = [*sources, "--checkpoint", str(checkpoint), "--out", str(out), *FAST]
    code, summary, err = _run([*argv, "--workers", "2"], capsys)
    assert code == cli_slides.EXIT_SLIDES_FAILED, err
    assert (summary["slides"], summary["done"], summary["skipped"], summary["failed"]) == (3, 2, 0, 1)
    assert "1 of 3 slides failed" in err
    rows = _index(out)
    assert list(rows) == [CMU, TCGA, "corrupt.svs"]  # the cohort's order
    assert list(next(iter(rows.values()))) == [*cohort.INDEX_COLUMNS, "fraction_carcinoma", "fraction_stroma"]
    assert [rows[n]["status"] for n in rows] == ["done", "done", "failed"]
    failed = rows["corrupt.svs"]
    assert str(corrupt) in failed["error"] and "\n" not in failed["error"]
    assert failed["out"] == failed["rois"] == failed["fraction_stroma"] == ""
    for name in (CMU, TCGA):
        assert rows[name]["error"] == "" and float(rows[name]["seconds"]) > 0
        _check_slide_folder(out / rows[name]["out"], rows[name])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.csv", "cohort.json", rows[CMU]["out"], rows[TCGA]["out"]]
    )  # nothing for the corrupt file, no temporary folder
    before = _mtimes(out, [rows[CMU]["out"], rows[TCGA]["out"]])

    # rerun (on the existing cluster): finished slides are skipped, not rescored; the bad one fails again
    code, summary, err = _run([*argv, "--scheduler", scheduler], capsys)
    assert code == cli_slides.EXIT_SLIDES_FAILED, err
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 2, 1)
    again = _index(out)
    assert [again[n]["status"] for n in again] == ["skipped", "skipped", "failed"]
    for name in (CMU, TCGA):
        assert again[name]["rois"] == rows[name]["rois"]
        assert again[name]["fraction_carcinoma"] == rows[name]["fraction_carcinoma"]
    assert _mtimes(out, [rows[CMU]["out"], rows[TCGA]["out"]]) == before


def test_worker_killed_mid_slide_is_retried_with_nothing_half_written(
    checkpoint: Path, slides_dir: Path, scheduler: str, crash_marker: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cohort"
    crash_marker.unlink()  # armed: the first attempt dies after writing its temporary folder
    argv = [str(slides_dir / CMU), "--checkpoint", str(checkpoint), "--out", str(out), *FAST]
    code, summary, err = _run([*argv, "--scheduler", scheduler], capsys)
    assert crash_marker.exists(), "no worker died"
    assert code == 0, err
    assert summary["done"] == 1
    row = _index(out)[CMU]
    assert row["status"] == "done"
    _check_slide_folder(out / "cmu_small_region", row)
    assert _hidden(out) == []  # the dead attempt's temporary folder was removed


def test_existing_cluster_with_a_resolution_a_slide_cannot_honour(
    checkpoint: Path, slides_dir: Path, scheduler: str, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cohort"
    sources = [str(slides_dir / TCGA), str(slides_dir / CMU)]  # TCGA records no pixel size
    argv = [*sources, "--checkpoint", str(checkpoint), "--out", str(out), *FAST, "--mpp", "1.0"]
    code, summary, err = _run([*argv, "--scheduler", scheduler, "--threads", "1"], capsys)
    assert code == cli_slides.EXIT_SLIDES_FAILED, err
    rows = _index(out)
    assert rows[TCGA]["status"] == "failed" and "records no pixel size" in rows[TCGA]["error"]
    assert os.path.abspath(slides_dir / TCGA) in rows[TCGA]["error"]  # cohorts name slides by absolute path
    assert rows[CMU]["status"] == "done"
    _check_slide_folder(out / "cmu_small_region", rows[CMU])
    assert json.loads((out / "cmu_small_region" / "summary.json").read_text())["mpp"] == pytest.approx(1.0)


def test_progress_over_slides_and_rois(
    checkpoint: Path, slides_dir: Path, scheduler: str, tmp_path: Path
) -> None:
    events = []
    options = cohort.CohortOptions(str(checkpoint), roi_size=(512, 512))
    sources = [slides_dir / CMU, slides_dir / TCGA]
    result = cohort.score_cohort(
        sources, tmp_path / "out", options, scheduler=scheduler, progress=events.append
    )
    assert result.count("done") == 2 and all(e.job == "score-slides" and e.total == 2 for e in events)
    stages = [e.info["stage"] for e in events]
    assert stages[0] == "start" and stages.count("slide") == 2 and stages[-1] == "slide"
    assert [e.done for e in events if e.info["stage"] == "slide"] == [1, 2]
    rois = [(e.info["rois_done"], e.info["rois_total"]) for e in events if e.info["stage"] == "rois"]
    assert any(done < total for done, total in rois)  # RoIs while the slides are scored, not only at the end
    assert all(done <= total for done, total in rois)
    assert rois[-1] == (sum(r["rois"] for r in result.rows),) * 2


def test_ctrl_c_keeps_the_index_of_finished_slides(
    checkpoint: Path, slides_dir: Path, scheduler: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    def interrupt(self: cli_slides._CohortBars, event) -> None:
        if event.info.get("stage") == "slide":
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_slides._CohortBars, "update", interrupt)
    out = tmp_path / "cohort"
    sources = [str(slides_dir / CMU), str(slides_dir / TCGA)]
    argv = [*sources, "--checkpoint", str(checkpoint), "--out", str(out), *FAST]
    code, _, err = _run([*argv, "--scheduler", scheduler], capsys)
    assert code == 130
    assert err.strip().splitlines()[-1] == "scorenet score-slides: interrupted"
    rows = _index(out)  # the slide(s) finished before the interrupt: both may end in the same poll
    assert len(rows) >= 1 and all(row["status"] == "done" for row in rows.values())
    for row in rows.values():
        _check_slide_folder(out / row["out"], row)


def test_a_slide_that_fails_is_a_row_not_an_exception(
    checkpoint: Path, corrupt: Path, tmp_path: Path
) -> None:
    """Raised, it would be retried on other workers only to fail again; returned, it is final."""
    slide = cohort.CohortSlide(str(corrupt), "corrupt")
    row = cohort.score_cohort_slide(slide, str(tmp_path), cohort.CohortOptions(str(checkpoint)))
    assert row["status"] == "failed" and row["error"].startswith(f"{corrupt}: not a readable")
    assert list(tmp_path.iterdir()) == []


def test_bad_input_exits_2_with_one_line(
    checkpoint: Path, slides_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    slide = str(slides_dir / CMU)
    base = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "a")]
    cases = {
        "no such file": [str(tmp_path / "missing.svs"), *base],
        "not found": [slide, "--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)],
        "cannot reach the Dask scheduler": [slide, *base, "--scheduler", "nonsense"],
        "overlap must be in": [slide, *base, "--overlap", "0.95"],
    }
    for message, argv in cases.items():
        code, _, err = _run(argv, capsys)
        assert code == 2, (message, err)
        assert len(err.strip().splitlines()) == 1 and message in err, err


def test_other_settings_than_the_folder_was_scored_with_exit_2(
    checkpoint: Path, slides_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cohort"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "summary.json").write_text("{}")  # a slide finished with these settings
    settings = cohort.CohortOptions(str(checkpoint), roi_size=(512, 512)).settings(CLASSES, "other-weights")
    (out / cohort.MANIFEST).write_text(json.dumps({"settings": settings}))
    argv = [str(slides_dir / CMU), "--checkpoint", str(checkpoint), "--out", str(out), *FAST]
    code, _, err = _run(argv, capsys)
    assert code == 2 and "other settings (checkpoint_sha256;" in err and len(err.strip().splitlines()) == 1
    # without a finished slide the settings bind nothing: they are replaced
    (out / "earlier" / "summary.json").unlink()
    mine = {**settings, "checkpoint_sha256": "mine"}
    cohort.check_manifest(out, mine, str(checkpoint))
    assert json.loads((out / cohort.MANIFEST).read_text())["settings"] == mine


def test_slides_of_equal_names_get_their_own_folders(slides_dir: Path, tmp_path: Path) -> None:
    for folder in ("a", "b"):  # naming opens no file
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "slide.svs").write_bytes(folder.encode())
    (tmp_path / "b" / "other.svs").symlink_to(slides_dir / TCGA)
    out = tmp_path / "out"
    slides = cohort.cohort_slides([tmp_path / "a", tmp_path / "b"], out)
    names = {str(Path(s.path).relative_to(tmp_path)): s.name for s in slides}
    assert list(names) == ["a/slide.svs", "b/other.svs", "b/slide.svs"]  # folders sorted
    assert names["b/other.svs"] == "other"
    a, b = names["a/slide.svs"], names["b/slide.svs"]
    assert a != b and all(n.startswith("slide-") and len(n) == len("slide-") + 8 for n in (a, b))
    assert cohort.cohort_slides([tmp_path / "a", tmp_path / "b"], out) == slides  # the same on a rerun
    # a folder that holds another slide's finished scores is not taken over
    (out / "other").mkdir(parents=True)
    (out / "other" / "summary.json").write_text(json.dumps({"slide": str(slides_dir / TCGA)}))
    assert cohort.cohort_slides([tmp_path / "b" / "other.svs"], out)[0].name.startswith("other-")
    # ... and a slide keeps the folder it finished in when a namesake joins the cohort
    (out / "slide").mkdir()
    (out / "slide" / "summary.json").write_text(json.dumps({"slide": str(tmp_path / "b" / "slide.svs")}))
    again = {
        Path(s.path).relative_to(tmp_path).as_posix(): s.name for s in cohort.cohort_slides([tmp_path], out)
    }
    assert again["b/slide.svs"] == "slide" and again["a/slide.svs"] == a


def test_parser_defaults_are_the_library_defaults() -> None:
    config = SlideScoringConfig()
    assert cohort.DEFAULT_ROI_SIZE == config.roi_size
    assert cohort.DEFAULT_OVERLAP == config.overlap
    assert cohort.DEFAULT_MIN_TISSUE == config.min_tissue
    assert cohort.DEFAULT_BATCH_SIZE == config.batch_size
    options = cohort.CohortOptions("model.safetensors")
    assert options.scoring_config() == SlideScoringConfig()
    assert {f.name for f in fields(options)} >= {"checkpoint", "device", "threads"}


def test_tasks_share_the_cores_of_their_host(scheduler: str) -> None:
    from distributed import Client
    from scorenet.threads import usable_cores

    class Fake:
        def nthreads(self) -> dict[str, int]:
            return {"tcp://10.0.0.1:1": 1, "tcp://10.0.0.1:2": 1, "tcp://10.0.0.2:1": 4}

    assert cohort.slots_by_host(Fake()) == {"10.0.0.1": 2, "10.0.0.2": 4}
    options = cohort.CohortOptions("m")
    assert cohort.task_threads(options) is None  # off a worker: the thread policy's free cores
    assert cohort.task_threads(cohort.CohortOptions("m", threads=3)) == 3
    with Client(scheduler) as client:
        slots = cohort.slots_by_host(client)
        assert slots == {"127.0.0.1": 2}
        shared = client.submit(cohort.task_threads, options, slots, pure=False).result()
        alone = client.submit(cohort.task_threads, options, {}, pure=False).result()  # its own slot only
    assert shared == max(1, usable_cores() // 2) and alone == usable_cores()


def test_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["score-slides", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: scorenet score-slides" in text and "--scheduler ADDRESS" in text
