"""Probe tasks that colour does not solve (nucleus density), the colour baseline, the probe bench."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scorenet.bench import probe_tasks
from scorenet.bench.probe_tasks import DensityTask, colour_baseline, density_task, hed, window_boxes
from scorenet.model import build_model
from scorenet.pretrained import save_pretrained
from small_model import SMALL

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nest(tiles_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with Image.open(tiles_dir / "hgsc_nest.jpg") as im:
        image = np.asarray(im.convert("RGB"))
    with np.load(tiles_dir / "hgsc_nest_type_mask.npz") as npz:
        return image, npz["nuc_raster"]


@pytest.fixture(scope="module")
def matched(data_root: Path) -> DensityTask:
    return density_task(data_root, stride=64)


@pytest.fixture(scope="module")
def tertile(data_root: Path) -> DensityTask:
    return density_task(data_root, stride=64, labelling="tertile", held_out="bottom")


def test_hed_is_skimage_rgb2hed(nest: tuple[np.ndarray, np.ndarray]) -> None:
    from skimage.color import rgb2hed

    crop = nest[0][:200, :300]
    crop = np.concatenate([crop, np.zeros((1, 300, 3), np.uint8), np.full((1, 300, 3), 255, np.uint8)])
    np.testing.assert_allclose(hed(crop), rgb2hed(crop), atol=1e-12)


def test_windows_cover_the_tile_on_the_stride() -> None:
    boxes = window_boxes(320, 384, 128, 64)  # the last row and column of windows end at the edges
    assert boxes.tolist()[:2] == [[0, 0, 128, 128], [64, 0, 192, 128]]
    assert len(boxes) == 4 * 5 and boxes[:, 2].max() == 384 and boxes[:, 3].max() == 320


@pytest.mark.parametrize("name", ["matched", "tertile"])
def test_density_task_is_balanced_and_its_halves_share_no_pixel(name: str, request) -> None:
    task: DensityTask = request.getfixturevalue(name)
    assert task.images.shape[1:] == (128, 128, 3) and task.images.dtype == np.uint8
    for train in (True, False):
        images, labels = task.split(train)
        assert len(labels) >= 100 and labels.mean() == 0.5 and len(images) == len(labels)
    # held_out "right": train windows end left of the middle line, test windows start right of it
    lo, hi = (0, 2) if task.held_out == "right" else (1, 3)
    train_boxes, test_boxes = task.boxes[task.train], task.boxes[~task.train]
    assert train_boxes[:, hi].max() <= 750 <= test_boxes[:, lo].min()


@pytest.mark.parametrize("name", ["matched", "tertile"])
def test_density_labels_follow_the_nucleus_mask(
    name: str, request, nest: tuple[np.ndarray, np.ndarray]
) -> None:
    task: DensityTask = request.getfixturevalue(name)
    image, mask = nest
    share = np.array([(mask[y0:y1, x0:x1] > 0).mean() for x0, y0, x1, y1 in task.boxes])
    np.testing.assert_allclose(task.nucleus_share, share, atol=1e-12)
    x0, y0, x1, y1 = task.boxes[7]
    np.testing.assert_array_equal(task.images[7], image[y0:y1, x0:x1])
    # within each half and stain bin, every dense window has more nucleus pixels than every sparse one
    for train in (True, False):
        for group in np.unique(task.groups[task.train == train]):
            members = (task.train == train) & (task.groups == group)
            dense, sparse = share[members & (task.labels == 1)], share[members & (task.labels == 0)]
            assert len(dense) == len(sparse) > 0 and dense.min() > sparse.max()
    if name == "matched":  # ... and both classes have the same stain intensity
        for train in (True, False):
            stain, labels = task.hematoxylin[task.train == train], task.labels[task.train == train]
            gap = abs(stain[labels == 1].mean() - stain[labels == 0].mean())
            assert gap < 0.02 * stain.mean()


def test_colour_solves_plain_density_but_not_stain_matched_density(
    matched: DensityTask, tertile: DensityTask
) -> None:
    scores = {}
    for name, task in (("matched", matched), ("tertile", tertile)):
        (train_x, train_y), (test_x, test_y) = task.split(True), task.split(False)
        scores[name] = colour_baseline(train_x, train_y, test_x, test_y)
        assert set(scores[name]) == {"linear", "knn_1"}
        assert all(0 <= v <= 1 for probe in scores[name].values() for v in probe.values())
    assert scores["tertile"]["linear"]["accuracy"] > 0.9  # why the labelling is stain-matched
    assert scores["matched"]["linear"]["accuracy"] < 0.7


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_probes", REPO / "benchmarks" / "bench_probes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    return probe_tasks.planted_task_dir(tmp_path_factory.mktemp("planted"), {"train": 3, "val": 3, "test": 3})


def test_planted_task_dir_is_the_learning_benchmarks(planted_dir: Path) -> None:
    assert planted_dir.name == "planted-kind-train3-val3-test3-seed0"  # learning.run_suite's name
    meta = json.loads((planted_dir / "planted.json").read_text())
    assert meta["seed"] == 0 and len(meta["images"]["test"]) == 3
    assert probe_tasks.planted_task_dir(planted_dir.parent, {"train": 3, "val": 3, "test": 3}) == planted_dir


def test_probe_bench_runs_on_a_small_model(tmp_path: Path, planted_dir: Path) -> None:
    bench = _bench_module()
    source = build_model("scorenet_4_1", 1, **SMALL)
    save_pretrained(source, tmp_path / "pre.safetensors", ["local_vit"])
    argv = [str(tmp_path / "out.json"), "--seeds", "0", "1", "--stride", "128", "--counts", "3", "3", "3"]
    argv += ["--work-dir", str(planted_dir.parent), "--pretrained", str(tmp_path / "pre.safetensors")]
    assert bench.main([*argv, "--override", "top_k=4"]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert {"command", "environment", "settings", "tasks", "colour", "models"} <= set(result)
    assert result["tasks"]["planted"]["task_dir"] == str(planted_dir)
    assert [m["name"] for m in result["models"]] == ["random", "pre"]
    assert result["models"][1]["init"]["loaded"] == ["local_vit"] and result["models"][0]["init"] is None
    for entry in result["models"]:  # the random initialisation has the file's architecture
        assert entry["config"]["embed_dim"] == SMALL["embed_dim"] and entry["config"]["top_k"] == 4
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        for task in ("density", "planted"):
            for probe in ("linear", "knn_1"):
                stats = entry["summary"][task][probe]["accuracy"]
                assert 0 <= stats["mean"] <= 1 and stats["std"] >= 0
    assert all(0 <= result["colour"][t]["linear"]["accuracy"] <= 1 for t in ("density", "planted"))
    # density features come from the local ViT alone: loaded from the file, they do not depend on the seed
    density = [r["density"] for r in result["models"][1]["runs"]]
    assert density[0] == density[1]
