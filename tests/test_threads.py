"""Thread policy: the free cores are measured, an explicit count wins, scoring runs with the chosen count."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from scorenet import threads
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.inference import score_rois
from scorenet.model import build_model
from scorenet.slide import open_slide
from scorenet.threads import ThreadPolicy, choose_threads, free_cores, intra_op_threads, usable_cores

SPIN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


@pytest.fixture
def spinner():
    """Another process keeping one core busy."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    time.sleep(0.3)
    yield proc
    proc.kill()
    proc.wait()


def _quiet_or_skip() -> None:
    if free_cores(0.3) < usable_cores() - 0.5:
        pytest.skip("the machine is busy with other work: the free-core measurement cannot be checked")


def test_idle_shares_are_summed_over_the_allowed_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshots = iter([
        {"cpu0": (100, 1000), "cpu1": (500, 1000)},
        {"cpu0": (110, 1100), "cpu1": (600, 1100)},  # cpu0 10 % busy, cpu1 100 % busy
    ])  # fmt: skip
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(snapshots))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert free_cores(0.0) == pytest.approx(0.9)


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to keep one busy")
def test_a_busy_core_is_not_counted_as_free() -> None:
    _quiet_or_skip()
    quiet = free_cores(0.3)
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        busy = free_cores(0.3)
    finally:
        proc.kill()
        proc.wait()
    assert busy <= quiet - 0.6, (busy, quiet)


@pytest.mark.skipif(usable_cores() != 2, reason="the 2-core case of the measurement")
def test_two_cores_with_one_busy_gives_one_thread(spinner) -> None:
    if free_cores(0.3) > 1.5:
        pytest.skip("the spinner did not get a core")
    assert choose_threads(max_age=0) == 1
    assert choose_threads(2) == 2  # an explicit count wins
    assert choose_threads(reserve=1, max_age=0) == 1  # never fewer than one


def test_explicit_counts_and_restoring_the_previous_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(0)
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert ThreadPolicy(3).update() == 3


def test_scoring_runs_the_model_with_the_chosen_threads(slides_dir) -> None:
    model = build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()
    seen: list[int] = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    with open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        score_rois(model, slide, [(2000, 1500, 256, 256)], device="cpu", threads=1)
        score_rois(model, slide, [(2000, 1500, 256, 256)], device="cpu", threads=2)
    assert seen == [1, 2] and torch.get_num_threads() == before
