"""Labelled folders: layouts, splits, errors, grid batching, and the demo folder from the real tiles."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.data import (
    GridBatchSampler,
    GridImageDataset,
    load_splits,
    read_split_csv,
    scan_image_folder,
    stratified_split,
    subsample,
)
from scorenet.demo_data import make_tile_folder
from scorenet.errors import ScoreNetInputError


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("demo") / "tiles", 10, seed=0, tiles_dir=tiles_dir)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_demo_folder_holds_real_varied_crops(demo_root: Path, tiles_dir: Path) -> None:
    samples = scan_image_folder(demo_root)
    assert Counter(s.label for s in samples) == {0: 10, 1: 10}
    assert {(s.height, s.width) for s in samples} == {(256, 384), (384, 256)}
    pixels = [np.asarray(Image.open(s.path)) for s in samples]
    assert len({p.tobytes() for p in pixels}) == len(pixels)  # every crop differs
    # carcinoma crops are darker (dense nuclei) than stroma crops: real tissue, not noise
    carcinoma = np.mean([p.mean() for p, s in zip(pixels, samples, strict=True) if s.label == 0])
    stroma = np.mean([p.mean() for p, s in zip(pixels, samples, strict=True) if s.label == 1])
    assert carcinoma < stroma
    again = make_tile_folder(demo_root.parent / "again", 10, seed=0, tiles_dir=tiles_dir)
    first = sorted((demo_root / "stroma").iterdir())[3]
    assert np.array_equal(
        np.asarray(Image.open(first)), np.asarray(Image.open(again / "stroma" / first.name))
    )


def test_plain_folder_gets_seeded_stratified_validation(demo_root: Path) -> None:
    splits = load_splits(demo_root, val_fraction=0.2, seed=3)
    assert splits.class_names == ["carcinoma", "stroma"]
    assert Counter(s.label for s in splits.val) == {0: 2, 1: 2}
    assert not {s.path for s in splits.train} & {s.path for s in splits.val}
    assert len(splits.train) + len(splits.val) == 20
    assert [s.path for s in load_splits(demo_root, val_fraction=0.2, seed=3).val] == [
        s.path for s in splits.val
    ]
    assert {s.path for s in load_splits(demo_root, val_fraction=0.2, seed=4).val} != {
        s.path for s in splits.val
    }


def test_fraction_is_stratified_nested_and_keeps_every_class(demo_root: Path) -> None:
    samples = scan_image_folder(demo_root)
    part = subsample(samples, 0.2, seed=0)
    assert Counter(s.label for s in part) == {0: 2, 1: 2}
    assert subsample(samples, 1.0, seed=0) == samples
    half = subsample(samples, 0.5, seed=0)
    assert set(part) < set(half)  # one seed: a larger fraction only adds images
    assert set(subsample(samples, 0.5, seed=1)) != set(half)
    tiny = subsample(samples, 0.01, seed=0)
    assert Counter(s.label for s in tiny) == {0: 1, 1: 1}  # never a class without images
    with pytest.raises(ScoreNetInputError, match="fraction"):
        subsample(samples, 0.0, seed=0)
    with pytest.raises(ScoreNetInputError, match="fraction"):
        stratified_split(samples, 1.0, seed=0)


def test_split_layout_is_used_as_is(demo_root: Path, tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        _copy(demo_root, tmp_path / split)
    (tmp_path / "val" / "stroma" / "stroma_000.png").unlink()
    splits = load_splits(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 19, 20)
    assert all(s.path.parts[-3] == "val" for s in splits.val)


def test_split_layout_with_other_classes_is_refused(demo_root: Path, tmp_path: Path) -> None:
    _copy(demo_root, tmp_path / "train")
    _copy(demo_root, tmp_path / "val")
    (tmp_path / "val" / "stroma").rename(tmp_path / "val" / "normal")
    with pytest.raises(ScoreNetInputError, match="differ from the expected classes"):
        load_splits(tmp_path)


def test_csv_split_resolves_relative_paths(demo_root: Path, tmp_path: Path) -> None:
    rows = ["path,label,split"]
    for i, path in enumerate(sorted(demo_root.glob("*/*.png"))):
        rows.append(
            f"{path.relative_to(demo_root)},{path.parent.name},{['train', 'train', 'val', 'test'][i % 4]}"
        )
    csv_path = tmp_path / "splits.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    splits = read_split_csv(csv_path, demo_root)
    assert splits.class_names == ["carcinoma", "stroma"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 5, 5)
    assert all(s.path.is_file() and splits.class_names[s.label] == s.path.parent.name for s in splits.train)

    csv_path.write_text("path,label,split\ncarcinoma/nope.png,carcinoma,train\n")
    with pytest.raises(ScoreNetInputError, match=r"splits.csv: line 2: image 'carcinoma/nope.png' not found"):
        read_split_csv(csv_path, demo_root)
    csv_path.write_text(f"path,label,split\n{rows[1].split(',')[0]},carcinoma,holdout\n")
    with pytest.raises(ScoreNetInputError, match="line 2: split 'holdout'"):
        read_split_csv(csv_path, demo_root)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda root: (root / "stroma" / "notes.txt").write_text("x"),
            r"notes.txt: unsupported file type '.txt'",
        ),
        (
            lambda root: (root / "stroma" / "broken.png").write_bytes(b"not a png"),
            r"broken.png: unreadable image",
        ),
        (lambda root: (root / "empty").mkdir(), r"empty: class folder 'empty' holds no images"),
    ],
    ids=["unknown-extension", "unreadable", "empty-class"],
)
def test_bad_folders_name_the_file(demo_root: Path, tmp_path: Path, damage, message: str) -> None:
    root = _copy(demo_root, tmp_path / "data")
    damage(root)
    with pytest.raises(ScoreNetInputError, match=message):
        load_splits(root)


def test_missing_or_classless_folder(tmp_path: Path) -> None:
    with pytest.raises(ScoreNetInputError, match="data folder not found"):
        load_splits(tmp_path / "nowhere")
    with pytest.raises(ScoreNetInputError, match="no class sub-folders"):
        load_splits(tmp_path)


def test_dataset_resizes_to_the_region_grid_and_flips_reproducibly(demo_root: Path) -> None:
    samples = scan_image_folder(demo_root)
    plain = GridImageDataset(samples, region_size=128, min_regions=4)
    tall = next(i for i, s in enumerate(samples) if s.height > s.width)
    image, label = plain[tall]
    assert image.dtype == torch.uint8 and image.shape == (3, 384, 256)  # already whole regions: kept
    assert label == samples[tall].label
    odd = GridImageDataset(samples, region_size=100, min_regions=4)
    assert odd[tall][0].shape == (3, 400, 300)  # 3.84 x 2.56 regions -> nearest whole grid 4 x 3
    aug = GridImageDataset(samples, region_size=128, min_regions=4, augment=True, seed=1)
    views = []
    for epoch in range(6):
        aug.set_epoch(epoch)
        views.append(aug[tall][0])
    aug.set_epoch(2)
    assert torch.equal(aug[tall][0], views[2])
    flips = {
        (torch.equal(v, image), torch.equal(v, image.flip(-1)), torch.equal(v, image.flip(-2))) for v in views
    }
    assert len(flips) > 1  # the epochs see different flips of the same image


def test_batches_share_a_grid_and_shard_across_ranks() -> None:
    grids = [(2, 3)] * 7 + [(3, 2)] * 5
    sampler = GridBatchSampler(grids, 3, shuffle=True, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # 3 + 2 batches
    assert all(len({grids[i] for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(12))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    ranks = [list(GridBatchSampler(grids, 3, shuffle=True, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert {i for rank in ranks for b in rank for i in b} == set(range(12))


def test_files_beside_the_class_folders_are_reported(
    demo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _copy(demo_root, tmp_path / "data")
    (root / "labels.xlsx").write_bytes(b"x")
    with caplog.at_level("WARNING", logger="scorenet.data"):
        assert len(scan_image_folder(root)) == 20
    assert "1 files outside class folders ignored (labels.xlsx)" in caplog.text
