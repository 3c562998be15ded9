"""Classification metrics, checkpoint evaluation and frozen-feature probes (linear and k-NN)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .config import ScoreNetConfig
from .data import GridBatchSampler, GridImageDataset, Sample, load_splits
from .jobs import Job, Progress, ProgressFn, StopFn, check_stop, run_job

if TYPE_CHECKING:
    from .model import ScoreNet
    from .pretrained import InitReport


def classification_metrics(
    labels: Sequence[int], predicted: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Weighted F1, per-class F1, accuracy and the confusion matrix (rows: true, columns: predicted).

    A class without images has no F1 (None, not 0: nothing was missed); weighted by support, it also
    counts for nothing in the weighted F1.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    classes = list(range(len(class_names)))
    per_class = f1_score(labels, predicted, labels=classes, average=None, zero_division=0)
    support = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {
        "weighted_f1": float(
            f1_score(labels, predicted, labels=classes, average="weighted", zero_division=0)
        ),
        "per_class_f1": {
            name: float(v) if n else None for name, v, n in zip(class_names, per_class, support, strict=True)
        },
        "accuracy": float(accuracy_score(labels, predicted)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "class_names": list(class_names),
        "num_images": len(labels),
    }


def mean_std(runs: Sequence[dict[str, Any]], keys: Sequence[str] = ("weighted_f1", "accuracy")) -> dict:
    """``{key: {"mean", "std", "values"}}`` over runs (population std, as in the paper's tables)."""
    summary = {}
    for key in keys:
        values = np.array([float(r[key]) for r in runs])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std()), "values": values.tolist()}
    return summary


def summarize_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of several runs (e.g. seeds) in one dict: the mean of each metric with ``*_std`` beside
    it, per-class F1 means and stds, the summed confusion matrix, and ``runs`` (each run's metrics)."""
    from .errors import ScoreNetInputError

    names = runs[0]["class_names"]
    if any(r["class_names"] != names for r in runs):
        raise ScoreNetInputError("the runs have different class names; summarise runs of one task only")
    stats = mean_std(runs)
    # a class without images in a run has no F1 there (None): average over the runs that have one
    per_class = {n: np.array([f for r in runs if (f := r["per_class_f1"][n]) is not None]) for n in names}
    return {
        "weighted_f1": stats["weighted_f1"]["mean"],
        "weighted_f1_std": stats["weighted_f1"]["std"],
        "accuracy": stats["accuracy"]["mean"],
        "accuracy_std": stats["accuracy"]["std"],
        "per_class_f1": {n: float(v.mean()) if v.size else None for n, v in per_class.items()},
        "per_class_f1_std": {n: float(v.std()) if v.size else None for n, v in per_class.items()},
        "confusion_matrix": np.sum([r["confusion_matrix"] for r in runs], axis=0).tolist(),
        "class_names": list(names),
        "num_runs": len(runs),
        "runs": list(runs),
    }


def make_loader(
    samples: Sequence[Sample], model: nn.Module, batch_size: int, num_workers: int = 0
) -> DataLoader:
    """An in-order loader batching images of equal region grid for ``model``."""
    cfg = model.config
    dataset = GridImageDataset(samples, cfg.region_size, cfg.top_k)
    sampler = GridBatchSampler(dataset.grids, batch_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


Predictions = tuple[np.ndarray, np.ndarray, np.ndarray]


def predict(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    progress: ProgressFn | None = None,
    **options: Any,
) -> Predictions:
    """(labels (N,), predicted (N,), features (N, D)) in dataset order: :func:`iter_predict` to its end."""
    return run_job(iter_predict(model, loader, device, **options), progress)


@torch.inference_mode()
def iter_predict(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    should_stop: StopFn | None = None,
    autocast_dtype: torch.dtype | None = None,
    job: str = "evaluate",
) -> Job[Predictions]:
    """Predict batch by batch, yielding a ``Progress`` per batch; the model is put in eval mode.

    ``should_stop()`` is asked before each batch; True raises ``scorenet.jobs.Cancelled``.
    """
    model.eval()
    order, labels, predicted, features = [], [], [], []
    batches = list(loader.batch_sampler)
    for step, (batch, (images, targets)) in enumerate(zip(batches, loader, strict=True), start=1):
        check_stop(should_stop, f"{job} stopped after {step - 1} of {len(batches)} batches")
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(images.to(device, non_blocking=True))
        order.extend(batch)
        labels.append(targets.numpy())
        predicted.append(out.logits.argmax(1).cpu().numpy())
        features.append(out.features.float().cpu().numpy())
        yield Progress(job, step, len(batches), "batch", {"images": len(order)})
    inverse = np.argsort(np.array(order), kind="stable")
    return (
        np.concatenate(labels)[inverse],
        np.concatenate(predicted)[inverse],
        np.concatenate(features)[inverse],
    )


def evaluate_checkpoint(
    data: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` on ``data``: :func:`iter_evaluate_checkpoint` run to its end."""
    return run_job(iter_evaluate_checkpoint(data, checkpoint, **options), progress)


def iter_evaluate_checkpoint(
    data: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    *,
    device: str = "auto",
    split: str | None = None,
    batch_size: int = 8,
    split_csv: str | os.PathLike[str] | None = None,
    should_stop: StopFn | None = None,
) -> Job[dict[str, Any]]:
    """Metrics of ``checkpoint`` on ``data``, yielding a ``Progress`` per batch.

    ``split`` picks train/val/test of a split layout or CSV; by default the test split when there is
    one, else every image of a plain ImageFolder (an evaluation folder, not a training one). Class
    folders are matched to the checkpoint's class names by name.
    """
    from .checkpoint import load_checkpoint
    from .inference import resolve_device

    dev = resolve_device(device)
    model, info = load_checkpoint(checkpoint, map_location=dev)
    samples, split = _checkpoint_samples(data, info.class_names, split, split_csv)
    loader = make_loader(samples, model, batch_size)
    labels, predicted, _ = yield from iter_predict(model, loader, dev, should_stop=should_stop)
    metrics = classification_metrics(labels, predicted, info.class_names)
    metrics.update(split=split, checkpoint=str(checkpoint), data=str(data))
    return metrics


def _checkpoint_samples(
    data: str | os.PathLike[str],
    class_names: Sequence[str] | None,
    split: str | None,
    split_csv: str | os.PathLike[str] | None,
) -> tuple[list[Sample], str]:
    """The samples of ``split`` and its name (default: ``test`` if any, else ``val`` of a split layout,
    else ``all`` images of a plain folder), labelled in the checkpoint's class order by name
    (``class_names`` None: in the folder's own order)."""
    from .errors import ScoreNetInputError

    splits = load_splits(data, split_csv=split_csv, val_fraction=0.0)
    class_names = splits.class_names if class_names is None else class_names
    unknown = sorted(set(splits.class_names) - set(class_names))
    if unknown:
        raise ScoreNetInputError(
            f"classes {unknown} are not among the checkpoint's classes {list(class_names)}", data
        )
    if split is None:
        split = "test" if splits.test else "val" if splits.val else "all"
    samples = splits.train if split == "all" else splits.split(split)
    if not samples:
        raise ScoreNetInputError(f"the {split!r} split holds no images", data)
    to_checkpoint = [list(class_names).index(n) for n in splits.class_names]
    return [Sample(s.path, to_checkpoint[s.label], s.height, s.width) for s in samples], split


def extract_features(
    model: nn.Module, samples: Sequence[Sample], device: str | torch.device = "cpu", batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen ``output.features`` (N, D) and labels (N,) of ``samples``."""
    loader = make_loader(samples, model, batch_size)
    labels, _, features = predict(model, loader, torch.device(device))
    return features, labels


def _cv_scores(estimator: Any, features: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> dict:
    from sklearn.model_selection import StratifiedKFold, cross_validate

    smallest = int(np.bincount(labels).min())
    splits = max(2, min(folds, smallest))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    scores = cross_validate(estimator, features, labels, cv=cv, scoring=("f1_weighted", "accuracy"))
    return {
        "folds": splits,
        "weighted_f1": {
            "mean": float(scores["test_f1_weighted"].mean()),
            "std": float(scores["test_f1_weighted"].std()),
        },
        "accuracy": {
            "mean": float(scores["test_accuracy"].mean()),
            "std": float(scores["test_accuracy"].std()),
        },
    }


def _linear_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _knn_pipeline(k: int, weighted: bool) -> Any:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    knn = KNeighborsClassifier(n_neighbors=k, weights="distance" if weighted else "uniform")
    return make_pipeline(Normalizer(), knn)


def linear_probe(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict:
    """Logistic regression on standardised frozen features, stratified k-fold CV."""
    return _cv_scores(_linear_pipeline(), features, labels, folds, seed)


def knn_probe(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 1,
    weighted: bool = False,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """k-NN on L2-normalised frozen features (cosine neighbours), stratified k-fold CV.

    ``weighted`` votes by inverse distance (sklearn ``weights="distance"``).
    """
    return _cv_scores(_knn_pipeline(k, weighted), features, labels, folds, seed)


def probe_features(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict:
    """Linear probe, 1-NN and distance-weighted 20-NN (fewer when the folds are small)."""
    k = max(1, min(20, len(labels) - len(labels) // max(2, folds) - 1))
    return {
        "linear": linear_probe(features, labels, folds=folds, seed=seed),
        "knn_1": knn_probe(features, labels, k=1, folds=folds, seed=seed),
        f"knn_{k}_weighted": knn_probe(features, labels, k=k, weighted=True, folds=folds, seed=seed),
    }


def heldout_probes(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Linear probe and 1-NN (as in :func:`probe_features`) fitted on a train set and scored on a
    held-out test set: ``{"linear" | "knn_1": {"accuracy", "weighted_f1"}}``.

    For tasks whose train and test images must not be mixed (e.g. overlapping windows of one image,
    split by halves), where cross-validation over all images would leak neighbours into the folds.
    """
    from sklearn.metrics import accuracy_score, f1_score

    scores = {}
    for name, probe in (("linear", _linear_pipeline()), ("knn_1", _knn_pipeline(1, False))):
        predicted = probe.fit(train_features, train_labels).predict(test_features)
        scores[name] = {
            "accuracy": float(accuracy_score(test_labels, predicted)),
            "weighted_f1": float(f1_score(test_labels, predicted, average="weighted", zero_division=0)),
        }
    return scores


def probe_model(
    model: nn.Module,
    data: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    split: str | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Frozen ``output.features`` of ``model`` (put in eval mode) on a split of ``data``, probed by
    :func:`probe_features`; e.g. a freshly seeded model, the baseline a pre-trained one must beat.

    Labels follow ``class_names`` by name (default: the folder's own classes); ``split`` as in
    :func:`evaluate_checkpoint`.
    """
    samples, split = _checkpoint_samples(data, class_names, split, split_csv)
    features, labels = extract_features(model.to(device), samples, device, batch_size)
    return {
        "split": split,
        "num_images": len(labels),
        "feature_dim": int(features.shape[1]),
        "probes": probe_features(features, labels, folds=folds, seed=seed),
    }


def seeded_model(
    config: ScoreNetConfig, num_classes: int, *, seed: int = 0, name: str = "scorenet", **overrides: Any
) -> ScoreNet:
    """A fresh ScoreNet of ``config`` with ``overrides``, initialised from ``seed`` without moving
    the caller's RNG."""
    from .model import ScoreNet

    config = dataclasses.replace(config, **{**overrides, "num_classes": num_classes})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ScoreNet(config, name=name)


def model_from_pretrained(
    path: str | os.PathLike[str], num_classes: int, *, seed: int = 0, **overrides: Any
) -> tuple[ScoreNet, InitReport]:
    """A ScoreNet built from a pre-trained file's header config, its parts loaded with ``load_init``.

    Parts the file lacks and the head keep the initialisation of :func:`seeded_model` with ``seed``,
    so a random model of the same config and seed differs only in the loaded parts. ``overrides`` set
    config fields that hold no weights (e.g. ``top_k``); an architecture field that differs from the
    file's raises ``CheckpointError``.
    """
    from .pretrained import load_init, read_pretrained_info

    info = read_pretrained_info(path)
    model = seeded_model(info.config, num_classes, seed=seed, name=info.name, **overrides)
    return model, load_init(model, path)


def is_pretrained_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` reads as a pre-trained file (``scorenet-pretrained-1``: parts, no head); False
    for anything else, including unreadable files, so that ``load_checkpoint`` names the problem."""
    from .checkpoint import read_header
    from .errors import CheckpointError
    from .pretrained import PRETRAINED_FORMAT

    try:
        return read_header(path).get("format") == PRETRAINED_FORMAT
    except CheckpointError:
        return False


def probe_checkpoint(
    data: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    *,
    device: str = "auto",
    split: str | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Frozen features of ``checkpoint`` on a split of ``data``, probed by :func:`probe_features`.

    ``checkpoint`` is a full checkpoint (classes matched by name) or a pre-trained file (format
    ``scorenet-pretrained-1``): the model is then built from its header, the parts it holds loaded,
    the others initialised from ``seed``, and the classes are the folder's. ``init`` says which
    parts came from the file.
    """
    from .checkpoint import FORMAT as CHECKPOINT_FORMAT
    from .checkpoint import load_checkpoint
    from .inference import resolve_device
    from .pretrained import PARTS

    dev = resolve_device(device)
    class_names: list[str] | None
    if is_pretrained_file(checkpoint):
        class_names = load_splits(data, split_csv=split_csv, val_fraction=0.0).class_names
        model, report = model_from_pretrained(checkpoint, len(class_names), seed=seed)
        init = report.to_json()
    else:
        model, info = load_checkpoint(checkpoint, map_location=dev)
        class_names = list(info.class_names)
        init = {
            "source": str(checkpoint),
            "format": CHECKPOINT_FORMAT,
            "loaded": [*PARTS, "head"],
            "fresh": [],
        }
    result = probe_model(
        model,
        data,
        device=dev,
        split=split,
        split_csv=split_csv,
        class_names=class_names,
        folds=folds,
        seed=seed,
    )
    return {**result, "init": init}
