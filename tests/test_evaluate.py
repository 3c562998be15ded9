"""Metrics, checkpoint evaluation by class name, and frozen-feature probes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scorenet.checkpoint import save_checkpoint
from scorenet.data import scan_image_folder
from scorenet.demo_data import DEMO_MODEL_OVERRIDES as SMALL
from scorenet.demo_data import make_tile_folder
from scorenet.errors import ScoreNetInputError
from scorenet.evaluate import (
    classification_metrics,
    evaluate_checkpoint,
    extract_features,
    heldout_probes,
    knn_probe,
    linear_probe,
    mean_std,
    model_from_pretrained,
    probe_checkpoint,
    probe_model,
    seeded_model,
    summarize_runs,
)
from scorenet.model import build_model
from scorenet.pretrained import save_pretrained


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("eval") / "tiles", 8, seed=1, tiles_dir=tiles_dir)


def test_metrics_of_a_known_confusion() -> None:
    # true 0 0 1 1 1, predicted 0 1 1 1 0: class 0 P = R = 1/2; class 1 P = R = 2/3
    m = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], ["a", "b"])
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class_f1"] == pytest.approx({"a": 1 / 2, "b": 2 / 3})
    assert m["weighted_f1"] == pytest.approx((2 * 1 / 2 + 3 * 2 / 3) / 5)
    absent = classification_metrics([0, 0], [0, 0], ["a", "b", "c"])
    assert absent["confusion_matrix"] == [[2, 0, 0], [0, 0, 0], [0, 0, 0]] and absent["weighted_f1"] == 1.0
    assert absent["per_class_f1"] == {"a": 1.0, "b": None, "c": None}


def test_a_class_without_images_has_no_f1_and_no_weight() -> None:
    # true a a a b b, predicted a b b b c: "c" has no images (None) although it was predicted once
    m = classification_metrics([0, 0, 0, 1, 1], [0, 1, 1, 1, 2], ["a", "b", "c"])
    f1_a, f1_b = 2 / (2 + 0 + 2), 2 / (2 + 2 + 1)  # 2 TP / (2 TP + FP + FN)
    assert m["per_class_f1"] == pytest.approx({"a": f1_a, "b": f1_b, "c": None})
    assert m["weighted_f1"] == pytest.approx((3 * f1_a + 2 * f1_b) / 5)
    assert m["per_class_f1"]["c"] is None and m["accuracy"] == pytest.approx(2 / 5)
    json.dumps(m)  # None is JSON null


def test_mean_std_over_runs() -> None:
    summary = mean_std([{"weighted_f1": 0.8, "accuracy": 0.9}, {"weighted_f1": 0.6, "accuracy": 0.7}])
    assert summary["weighted_f1"]["mean"] == pytest.approx(0.7)
    assert summary["weighted_f1"]["std"] == pytest.approx(0.1)
    assert summary["accuracy"]["values"] == [0.9, 0.7]


def test_probes_separate_separable_features_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    centres = rng.normal(size=(3, 16)) * 4
    features = centres[labels] + rng.normal(size=(60, 16))
    assert linear_probe(features, labels)["weighted_f1"]["mean"] > 0.95
    assert knn_probe(features, labels, k=1)["weighted_f1"]["mean"] > 0.95
    noise = rng.normal(size=(60, 16))
    weighted = knn_probe(noise, labels, k=10, weighted=True)
    assert weighted["weighted_f1"]["mean"] < 0.6 and weighted["folds"] == 5


def test_evaluation_matches_classes_by_name(demo_root: Path, tmp_path: Path) -> None:
    model = build_model("scorenet_4_1", 3, **SMALL).eval()
    # the checkpoint orders its classes differently from the folder and knows one more
    names = ["stroma", "normal", "carcinoma"]
    save_checkpoint(model, tmp_path / "model.safetensors", names)
    metrics = evaluate_checkpoint(demo_root, tmp_path / "model.safetensors", device="cpu")
    assert metrics["class_names"] == names and metrics["split"] == "all" and metrics["num_images"] == 16
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == 16 and matrix[0].sum() == 8 and matrix[2].sum() == 8 and matrix[1].sum() == 0
    assert metrics["per_class_f1"]["normal"] is None  # no "normal" images: absent, not 0
    features, labels = extract_features(model, scan_image_folder(demo_root))
    assert features.shape == (16, model.config.feature_dim) and labels.tolist() == [0] * 8 + [1] * 8

    save_checkpoint(model, tmp_path / "other.safetensors", ["stroma", "normal", "tumour"])
    with pytest.raises(ScoreNetInputError, match=r"classes \['carcinoma'\] are not among the checkpoint's"):
        evaluate_checkpoint(demo_root, tmp_path / "other.safetensors", device="cpu")


def test_probe_checkpoint_reports_every_probe(demo_root: Path, tmp_path: Path) -> None:
    model = build_model("scorenet_4_1", 2, **SMALL).eval()
    save_checkpoint(model, tmp_path / "model.safetensors", ["carcinoma", "stroma"])
    report = probe_checkpoint(demo_root, tmp_path / "model.safetensors", device="cpu", folds=4)
    assert report["num_images"] == 16 and report["feature_dim"] == model.config.feature_dim
    assert set(report["probes"]) == {"linear", "knn_1", "knn_11_weighted"}
    assert all(p["folds"] == 4 and 0 <= p["weighted_f1"]["mean"] <= 1 for p in report["probes"].values())


def test_heldout_probes_fit_on_train_and_score_on_test() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8)) * 4
    train_y, test_y = np.repeat([0, 1], 15), np.repeat([0, 1], 10)
    train_x, test_x = centres[train_y] + rng.normal(size=(30, 8)), centres[test_y] + rng.normal(size=(20, 8))
    scores = heldout_probes(train_x, train_y, test_x, test_y)
    assert scores == {p: {"accuracy": 1.0, "weighted_f1": 1.0} for p in ("linear", "knn_1")}
    # trained on the other labelling, every test image is wrong: the test labels are really used
    flipped = heldout_probes(train_x, 1 - train_y, test_x, test_y)
    assert flipped["linear"]["accuracy"] == 0.0 and flipped["knn_1"]["accuracy"] == 0.0


def test_probe_checkpoint_accepts_a_pretrained_file(demo_root: Path, tmp_path: Path) -> None:
    source = build_model("scorenet_4_1", 1, **SMALL)
    path = tmp_path / "pretrained.safetensors"
    save_pretrained(source, path, ["local_vit"])
    report = probe_checkpoint(demo_root, path, device="cpu", folds=4, seed=3)
    assert report["num_images"] == 16 and report["feature_dim"] == source.config.feature_dim
    assert set(report["probes"]) == {"linear", "knn_1", "knn_11_weighted"}
    assert report["init"]["loaded"] == ["local_vit"] and report["init"]["format"] == "scorenet-pretrained-1"
    # the model: the file's local ViT, the other parts as a random model of the same config and seed
    model, _ = model_from_pretrained(path, 2, seed=3)
    fresh = seeded_model(source.config, 2, seed=3)
    assert model.config == fresh.config and model.config.num_classes == 2
    for key, value in model.state_dict().items():
        expected = source.state_dict()[key] if key.startswith("local_vit.") else fresh.state_dict()[key]
        assert torch.equal(value, expected), key
    # probing that random model directly gives the same report format, from other features
    random = probe_model(fresh, demo_root, folds=4, seed=3)
    assert set(random) == {"split", "num_images", "feature_dim", "probes"} and random["num_images"] == 16
    features = extract_features(model, scan_image_folder(demo_root))[0]
    assert not np.allclose(features, extract_features(fresh, scan_image_folder(demo_root))[0])


def test_a_seeded_model_leaves_the_global_rng_alone() -> None:
    config = build_model("scorenet_4_1", 2, **SMALL).config
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = seeded_model(config, 2, seed=5, top_k=2)
    assert torch.equal(torch.rand(3), expected) and a.config.top_k == 2
    b = seeded_model(a.config, 2, seed=5)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_split_layout_is_evaluated_on_its_test_split(demo_root: Path, tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        shutil.copytree(demo_root, tmp_path / "data" / split)
    for extra in sorted((tmp_path / "data" / "test" / "stroma").iterdir())[:5]:
        extra.unlink()
    model = build_model("scorenet_4_1", 2, **SMALL).eval()
    save_checkpoint(model, tmp_path / "model.safetensors", ["carcinoma", "stroma"])
    metrics = evaluate_checkpoint(tmp_path / "data", tmp_path / "model.safetensors", device="cpu")
    assert metrics["split"] == "test" and metrics["num_images"] == 11
    assert [sum(row) for row in metrics["confusion_matrix"]] == [8, 3]
    on_val = evaluate_checkpoint(tmp_path / "data", tmp_path / "model.safetensors", device="cpu", split="val")
    assert on_val["split"] == "val" and on_val["num_images"] == 16


def test_summary_of_runs() -> None:
    runs = [
        classification_metrics([0, 0, 1, 1], [0, 0, 1, 1], ["a", "b"]),
        classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"]),
    ]
    summary = summarize_runs(runs)
    assert summary["accuracy"] == pytest.approx(0.875) and summary["accuracy_std"] == pytest.approx(0.125)
    assert summary["per_class_f1"]["a"] == pytest.approx((1 + 2 / 3) / 2)
    assert summary["confusion_matrix"] == [[3, 1], [0, 4]]
    with pytest.raises(ScoreNetInputError, match="different class names"):
        summarize_runs([runs[0], classification_metrics([0], [0], ["x", "b"])])
    # a class absent from one run is averaged over the others; absent from all, it stays None
    partial = summarize_runs([runs[1], classification_metrics([0, 0], [0, 1], ["a", "b"])])
    assert partial["per_class_f1"]["b"] == pytest.approx(0.8) and partial["per_class_f1_std"]["b"] == 0
    none = summarize_runs([classification_metrics([0], [0], ["a", "b"])] * 2)
    assert none["per_class_f1"]["b"] is None and none["per_class_f1_std"]["b"] is None


def test_cli_probes_pretrained_weights_and_refuses_to_classify(demo_root: Path, tmp_path: Path) -> None:
    from scorenet.cli import main

    path = tmp_path / "pretrained.safetensors"
    save_pretrained(build_model("scorenet_4_1", 1, **SMALL), path, ["local_vit"])
    args = ["eval", str(demo_root), "--checkpoint", str(path), "--out", str(tmp_path / "out"), "--folds", "4"]
    assert main(args) == 2  # no classifier head: only --probe makes sense
    assert main([*args, "--probe"]) == 0
    probe = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert probe["init"]["loaded"] == ["local_vit"] and not (tmp_path / "out" / "metrics.json").exists()
