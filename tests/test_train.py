"""Finetuning on the real carcinoma-vs-stroma folder: learning, files, exact resume, stop, DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from scorenet.checkpoint import load_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.errors import CheckpointError, ScoreNetInputError
from scorenet.train import LAST, STATE, TrainConfig, train

SMALL = DEMO_MODEL_OVERRIDES


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("train") / "tiles", 24, seed=0, tiles_dir=tiles_dir)


def _config(data: Path, out: Path, **kwargs) -> TrainConfig:
    options = {"epochs": 4, "batch_size": 4, "lr": 0.01, "device": "cpu", "overrides": dict(SMALL)}
    return TrainConfig(data=data, out=out, **{**options, **kwargs})


def test_learns_carcinoma_vs_stroma_and_writes_its_files(demo_root: Path, tmp_path: Path) -> None:
    events = []
    result = train(_config(demo_root, tmp_path / "run", mpp=0.5), progress=lambda e: events.append(e.info))
    assert not result.stopped and len(result.history) == 4
    best_f1 = max(row["val_weighted_f1"] for row in result.history)
    assert best_f1 >= 0.75  # chance is 0.5
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    lrs = [row["lr"] for row in result.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] <= 0.01  # cosine, from the base lr down
    for name in ("best.safetensors", "last.safetensors", "last_state.pt", "log.csv", "log.json"):
        assert (tmp_path / "run" / name).is_file()
    model, info = load_checkpoint(result.best_checkpoint)
    assert info.class_names == ["carcinoma", "stroma"] and info.config.top_k == 4
    assert info.metadata["mpp"] == 0.5 and info.metadata["val_weighted_f1"] == pytest.approx(best_f1)
    with open(tmp_path / "run" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] and float(rows[0]["lr"]) == pytest.approx(lrs[0])
    steps = [e for e in events if "train_loss" not in e]
    assert steps[0]["epoch"] == 1 and steps[0]["step"] == 1 and steps[-1]["step"] == steps[-1]["steps"]
    assert sum("val_weighted_f1" in e for e in events) == 4


def test_resume_after_a_stop_gives_the_uninterrupted_weights(demo_root: Path, tmp_path: Path) -> None:
    # ScoreMix with prob 0.5 draws from the mix generator, the perturbed top-K from the global RNG
    kwargs = {"mix": "scoremix", "mix_prob": 0.5, "fraction": 0.5, "epochs": 2}
    full = train(_config(demo_root, tmp_path / "full", **kwargs))
    seen: list[dict] = []

    def stop_mid_second_epoch() -> bool:
        return bool(seen) and seen[-1]["epoch"] == 2 and seen[-1]["step"] >= 1

    part = train(
        _config(demo_root, tmp_path / "part", **kwargs),
        progress=lambda e: seen.append(e.info),
        should_stop=stop_mid_second_epoch,
    )
    assert part.stopped and len(part.history) == 1
    assert load_checkpoint(part.last_checkpoint)[1].metadata["epoch"] == 1
    torch.manual_seed(123)  # resuming must not depend on the caller's RNG
    resumed = train(_config(demo_root, tmp_path / "part", resume=True, **kwargs))
    assert not resumed.stopped and len(resumed.history) == 2
    expected, got = load_file(full.last_checkpoint), load_file(resumed.last_checkpoint)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert json.loads((tmp_path / "part" / "log.json").read_text()) == full.history


def test_fresh_run_differs_from_another_seed(demo_root: Path, tmp_path: Path) -> None:
    a = train(_config(demo_root, tmp_path / "a", epochs=1, fraction=0.2))
    b = train(_config(demo_root, tmp_path / "b", epochs=1, fraction=0.2, seed=1))
    a2 = train(_config(demo_root, tmp_path / "a2", epochs=1, fraction=0.2))
    wa, wb, wa2 = (load_file(r.last_checkpoint)["head.weight"] for r in (a, b, a2))
    assert torch.equal(wa, wa2) and not torch.equal(wa, wb)


def test_corrupted_state_is_a_clear_error(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(demo_root, out, epochs=1, fraction=0.2))
    (out / STATE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"last_state.pt: corrupt training state"):
        train(_config(demo_root, out, epochs=2, fraction=0.2, resume=True))
    (out / LAST).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"last.safetensors: not a readable safetensors checkpoint"):
        load_checkpoint(out / LAST)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"mix": "mixup"}, "unknown mix 'mixup'"),
        ({"fraction": 0.0}, "data fraction"),
        ({"epochs": 0}, "epochs"),
        ({"overrides": {"top_kk": 3}}, "bad model override .*top_kk"),
        ({"overrides": {"embed_dim": 30, "num_heads": 4}}, "embed_dim must be divisible by num_heads"),
        ({"model": "scorenet_9"}, "unknown model 'scorenet_9'"),
    ],
)
def test_bad_options_are_refused_before_training(tmp_path: Path, option: dict, message: str) -> None:
    with pytest.raises(ScoreNetInputError, match=message):
        train(_config(tmp_path, tmp_path / "run", **option))


def test_torchrun_two_cpu_processes(demo_root: Path, tmp_path: Path) -> None:
    # ScoreMix asks the wrapped model's scorer for its distribution: the DDP path must allow that
    torchrun = Path(sys.executable).with_name("torchrun")
    script = (
        "import json\n"
        "from scorenet.train import TrainConfig, train\n"
        f"r = train(TrainConfig(data={str(demo_root)!r}, out={str(tmp_path / 'ddp')!r}, epochs=1,"
        f" batch_size=4, lr=0.01, device='cpu', fraction=0.5, mix='scoremix', overrides={SMALL!r}))\n"
        "import torch.distributed as dist\n"
        "row = r.history[-1]\n"
        "report = {'rank': dist.get_rank(), 'world': dist.get_world_size(),"
        " 'loss': row['train_loss'], 'val': row['val_confusion_matrix']}\n"
        f"open(f'{tmp_path}/rank{{dist.get_rank()}}.json', 'w').write(json.dumps(report))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(_write(tmp_path / "ddp.py", script))],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(r["rank"] for r in reports) == [0, 1] and {r["world"] for r in reports} == {2}
    assert reports[0]["loss"] != reports[1]["loss"]  # each process trained on its own batches
    assert reports[0]["val"] == reports[1]["val"]  # with the same synchronised weights
    assert load_checkpoint(tmp_path / "ddp" / "last.safetensors")[1].metadata["epoch"] == 1
    shutil.rmtree(tmp_path / "ddp")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_without_validation_the_best_epoch_has_the_lowest_loss(demo_root: Path, tmp_path: Path) -> None:
    result = train(_config(demo_root, tmp_path / "run", epochs=3, fraction=0.3, val_fraction=0.0))
    assert all("val_weighted_f1" not in row for row in result.history)
    losses = [row["train_loss"] for row in result.history]
    best_epoch = load_checkpoint(result.best_checkpoint)[1].metadata["epoch"]
    assert best_epoch == 1 + losses.index(min(losses))


def test_trains_from_a_split_csv(demo_root: Path, tmp_path: Path) -> None:
    images = sorted(demo_root.glob("*/*.png"))
    rows = [
        f"{p.relative_to(demo_root)},{p.parent.name},{'val' if i % 6 == 0 else 'train'}"
        for i, p in enumerate(images)
    ]
    (tmp_path / "splits.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    result = train(_config(demo_root, tmp_path / "run", epochs=1, split_csv=tmp_path / "splits.csv"))
    assert result.class_names == ["carcinoma", "stroma"]
    assert sum(sum(r) for r in result.history[0]["val_confusion_matrix"]) == len(images[::6])


def test_resume_refuses_changed_options(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(demo_root, out, epochs=1, fraction=0.2))
    with pytest.raises(ScoreNetInputError, match=r"changed: epochs 1 -> 3, mix 'none' -> 'cutmix'"):
        train(_config(demo_root, out, epochs=3, fraction=0.2, mix="cutmix", resume=True))
    finished = train(_config(demo_root, out, epochs=1, fraction=0.2, resume=True))
    assert len(finished.history) == 1 and not finished.stopped  # nothing left to do
