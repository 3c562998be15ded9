"""One protocol for long jobs: Progress events, run_job, one Cancelled, on real scoring and evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
from scorenet.checkpoint import save_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.evaluate import evaluate_checkpoint, iter_evaluate_checkpoint
from scorenet.jobs import Cancelled, Progress, run_job
from scorenet.model import build_model


def _counting_job(n: int, log: list[str]):
    try:
        for i in range(1, n + 1):
            log.append(f"work {i}")
            yield Progress("count", i, n, "item")
    except KeyboardInterrupt:
        log.append("interrupted")
        return "stopped"
    return "done"


def test_run_job_hands_every_event_to_progress_and_returns_the_result() -> None:
    log: list[str] = []
    seen: list[Progress] = []
    assert run_job(_counting_job(3, log), seen.append) == "done"
    assert [e.done for e in seen] == [1, 2, 3] and [e.fraction for e in seen][-1] == 1.0
    assert seen[0].describe() == "count: 1/3 items"
    assert run_job(_counting_job(2, []), None) == "done"


def test_ctrl_c_in_progress_reaches_the_job_as_if_it_landed_there() -> None:
    log: list[str] = []

    def interrupt_at_second(event: Progress) -> None:
        if event.done == 2:
            raise KeyboardInterrupt

    # the job handles it as it would a Ctrl-C in its own code (training keeps its last epoch)
    assert run_job(_counting_job(5, log), interrupt_at_second) == "stopped"
    assert log == ["work 1", "work 2", "interrupted"]


def test_progress_without_a_total() -> None:
    event = Progress("scan", 4, None, "slide")
    assert event.fraction is None and event.describe() == "scan: 4 slides"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("jobs")
    data = make_tile_folder(root / "tiles", 8, seed=1, tiles_dir=tiles_dir)
    checkpoint = root / "tiny.safetensors"
    model = build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES)
    save_checkpoint(model, checkpoint, ["carcinoma", "stroma"])
    return data, checkpoint


def test_evaluation_is_a_job_of_the_same_protocol(labelled: tuple[Path, Path]) -> None:
    data, checkpoint = labelled
    events: list[Progress] = []
    metrics = evaluate_checkpoint(data, checkpoint, device="cpu", batch_size=4, progress=events.append)
    assert metrics["num_images"] == 16
    assert [e.done for e in events] == list(range(1, len(events) + 1)) and events[-1].total == len(events)
    assert {e.job for e in events} == {"evaluate"} and events[-1].info["images"] == 16
    job = iter_evaluate_checkpoint(data, checkpoint, device="cpu", batch_size=4, should_stop=lambda: True)
    with pytest.raises(Cancelled, match="evaluate stopped after 0 of"):
        next(job)
