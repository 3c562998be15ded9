"""The ``scorenet`` command: train -> eval -> score on real data, help, and exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.checkpoint import save_checkpoint
from scorenet.cli import main
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.model import build_model

SMALL_ARGS = [arg for key, value in DEMO_MODEL_OVERRIDES.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("cli") / "tiles", 24, seed=2, tiles_dir=tiles_dir)


@pytest.fixture(scope="module")
def trained(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", str(demo_root), "--out", str(run), "--epochs", "4", "--batch-size", "4", "--lr", "0.01"]
    assert main([*argv, "--device", "cpu", "--mpp", "2.0", *SMALL_ARGS]) == 0
    return run


def test_train_writes_a_run_folder(trained: Path, capsys: pytest.CaptureFixture) -> None:
    log = json.loads((trained / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2, 3, 4]
    config = json.loads((trained / "train_config.json").read_text())
    assert config["overrides"]["top_k"] == 4 and config["class_names"] == ["carcinoma", "stroma"]
    assert (trained / "best.safetensors").is_file()


def test_eval_writes_metrics(trained: Path, demo_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert main(["eval", str(demo_root), "--checkpoint", str(trained / "best.safetensors"), "--out", str(out),
                 "--device", "cpu", "--probe", "--folds", "4"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["class_names"] == ["carcinoma", "stroma"] and metrics["num_images"] == 48
    assert np.array(metrics["confusion_matrix"]).sum() == 48
    assert metrics["weighted_f1"] >= 0.75  # 80 % of these images were its training data
    assert set(metrics["per_class_f1"]) == {"carcinoma", "stroma"}
    probe = json.loads((out / "probe.json").read_text())
    assert probe["probes"]["linear"]["weighted_f1"]["mean"] >= 0.75
    assert json.loads(capsys.readouterr().out)["weighted_f1"] == metrics["weighted_f1"]


def test_score_a_real_slide_roi(trained: Path, slides_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "score"
    roi = ["--roi", "1000", "1200", "512", "384"]
    assert main(["score", str(slides_dir / "cmu_small_region.svs"), *roi, "--checkpoint",
                 str(trained / "best.safetensors"), "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    prediction = json.loads((out / "prediction.json").read_text())
    assert prediction["predicted"] in ("carcinoma", "stroma")
    distribution = np.load(out / "distribution.npy")
    # trained at 2 um/px (stored in the checkpoint): 512 x 384 level-0 px at 0.499 um/px -> 2 x 1.5 regions,
    # grown to K = 4 whole regions
    assert distribution.sum() == pytest.approx(1.0, abs=1e-5) and distribution.size >= 4
    regions = json.loads((out / "regions.geojson").read_text())
    boxes = [f for f in regions["features"] if f["properties"]["name"].startswith("region")]
    coords = np.array([c for f in regions["features"] for c in f["geometry"]["coordinates"][0]])
    assert coords[:, 0].min() >= 900 and coords[:, 0].max() <= 1612 and coords[:, 1].min() >= 1100
    assert len(boxes) == 4  # K
    assert Image.open(out / "overlay.png").size[0] > 0


def test_two_rois_get_their_own_folders(trained: Path, slides_dir: Path, tmp_path: Path) -> None:
    slide = str(slides_dir / "cmu_small_region.svs")
    assert main(["score", slide, "--roi", "0", "0", "256", "256", "--roi", "1000", "1000", "256", "256",
                 "--mpp", "0.499", "--checkpoint", str(trained / "last.safetensors"), "--out", str(tmp_path),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert (tmp_path / "roi_1" / "prediction.json").is_file() and (
        tmp_path / "roi_2" / "overlay.png"
    ).is_file()


@pytest.mark.parametrize("command", ["train", "eval", "score", "bench"])
def test_help_of_each_subcommand(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: scorenet {command}" in capsys.readouterr().out


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_info:  # argparse errors
        return int(exit_info.code)


def test_user_errors_exit_2_with_one_line(
    trained: Path, demo_root: Path, slides_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    cases = [
        (["train", str(tmp_path / "nope"), "--out", str(tmp_path / "r")], "nope: data folder not found"),
        (["eval", str(demo_root), "--checkpoint", str(broken), "--out", str(tmp_path)], "broken.safetensors"),
        (["score", str(slides_dir / "cmu_small_region.svs"), "--roi", "99999", "0", "10", "10",
          "--checkpoint", str(trained / "best.safetensors"), "--out", str(tmp_path)], "cmu_small_region.svs"),
        (["train", str(demo_root), "--out", str(tmp_path), "--fraction", "150"], "percentage"),
        (["train", str(demo_root)], "--out"),
    ]  # fmt: skip
    for argv, needle in cases:
        assert _exit_code(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], lines
    # the installed command: nothing but that line, no traceback
    done = subprocess.run(
        [sys.executable, "-m", "scorenet.cli", "eval", str(demo_root), "--checkpoint", str(broken), "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        done.returncode == 2
        and done.stderr.startswith("scorenet eval: error: ")
        and "Traceback" not in done.stderr
    )
    assert len(done.stderr.strip().splitlines()) == 1


def test_eval_of_several_runs_gives_mean_and_std(trained: Path, demo_root: Path, tmp_path: Path) -> None:
    checkpoints = [str(trained / "best.safetensors"), str(trained / "last.safetensors")]
    assert (
        main(
            ["eval", str(demo_root), "--checkpoint", *checkpoints, "--out", str(tmp_path), "--device", "cpu"]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    f1s = [run["weighted_f1"] for run in metrics["runs"]]
    assert metrics["num_runs"] == 2 and metrics["weighted_f1"] == pytest.approx(np.mean(f1s))
    assert metrics["weighted_f1_std"] == pytest.approx(np.std(f1s))
    assert np.array(metrics["confusion_matrix"]).sum() == 2 * 48


def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes(demo_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", str(demo_root), "--out", str(run), "--epochs", "6", "--batch-size", "4", "--lr", "0.01",
            "--fraction", "50", "--device", "cpu", *SMALL_ARGS]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "scorenet.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a job started in the background inherits SIGINT ignored; Ctrl-C must reach the command
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (run / "last_state.pt").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    done = len(json.loads((run / "log.json").read_text()))
    assert 1 <= done < 6 and json.loads(out)["stopped"] is True
    assert main([*argv, "--resume"]) == 0
    epochs = [row["epoch"] for row in json.loads((run / "log.json").read_text())]
    assert epochs == list(range(1, 7))


def test_score_a_plain_image_whole(trained: Path, demo_root: Path, tmp_path: Path) -> None:
    image = sorted((demo_root / "carcinoma").iterdir())[0]
    checkpoint = str(trained / "best.safetensors")
    assert (
        main(["score", str(image), "--checkpoint", checkpoint, "--out", str(tmp_path), "--device", "cpu"])
        == 0
    )
    prediction = json.loads((tmp_path / "prediction.json").read_text())
    width, height = Image.open(image).size
    assert prediction["roi"] == [0, 0, width, height] and prediction["predicted"] == "carcinoma"


def _carcinoma_only(root: Path, tiles_dir: Path) -> Path:
    """``root/one/carcinoma/`` with three real 256 x 256 carcinoma crops, and no other class."""
    both = make_tile_folder(root / "both", 3, seed=4, sizes=((256, 256),), tiles_dir=tiles_dir)
    (root / "one").mkdir()
    return (both / "carcinoma").rename(root / "one" / "carcinoma").parent


def test_train_on_a_single_class_exits_2(tmp_path: Path, tiles_dir: Path, capsys) -> None:
    data = _carcinoma_only(tmp_path, tiles_dir)
    images = sorted(data.glob("*/*.png"))
    csv_file = tmp_path / "one.csv"
    rows = [f"{p},carcinoma,{'val' if i == 0 else 'train'}" for i, p in enumerate(images)]
    csv_file.write_text("\n".join(["path,label,split", *rows]) + "\n")
    out = tmp_path / "run"
    for source in (data, csv_file):
        assert main(["train", str(source), "--out", str(out), "--device", "cpu", *SMALL_ARGS]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"scorenet train: error: {source}: only 1 class ('carcinoma');")
        assert "a classifier needs at least 2" in lines[0]
        assert not out.exists()  # refused before anything is written


def test_eval_reports_a_class_without_images_as_absent(tmp_path: Path, tiles_dir: Path, capsys) -> None:
    data = _carcinoma_only(tmp_path, tiles_dir)
    torch.manual_seed(0)
    save_checkpoint(build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES), tmp_path / "m.safetensors",
                    ["carcinoma", "stroma"])  # fmt: skip
    argv = ["eval", str(data), "--checkpoint", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "ev")]
    assert main([*argv, "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert metrics["per_class_f1"]["stroma"] is None and printed["per_class_f1"]["stroma"] is None  # null
    assert [sum(row) for row in metrics["confusion_matrix"]] == [3, 0]
    # only carcinoma has images: precision 1 whenever it is predicted, recall = accuracy
    accuracy = metrics["accuracy"]
    carcinoma_f1 = 2 * accuracy / (1 + accuracy)
    assert metrics["per_class_f1"]["carcinoma"] == pytest.approx(carcinoma_f1)
    assert metrics["weighted_f1"] == pytest.approx(carcinoma_f1)  # the absent class weighs nothing
