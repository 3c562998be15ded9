"""The planted learning task: seeded, labels follow the masks, planted pixels are the real source pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from scorenet.bench import planted


@pytest.fixture(scope="module")
def samples(data_root):
    return planted.generate(12, seed=3, root=data_root)


def test_same_seed_same_samples_other_seed_differs(data_root, samples):
    again = planted.generate(12, seed=3, root=data_root)
    other = planted.generate(12, seed=4, root=data_root)
    for a, b in zip(samples, again, strict=True):
        assert a.label == b.label and a.patches == b.patches
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(samples, other, strict=True))


def test_classes_balanced_and_images_bach_aspect(samples):
    config = planted.PlantedConfig()
    assert sorted(s.label for s in samples) == sorted(list(range(3)) * 4)
    for s in samples:
        assert s.image.shape == (config.height, config.width, 3) and s.image.dtype == np.uint8
        assert config.height * 4 == config.width * 3


@pytest.fixture(scope="module")
def amount_samples(data_root):
    return planted.generate(12, seed=3, config=planted.PlantedConfig(task="amount"), root=data_root)


def test_kind_task_labels_follow_the_carcinoma_source_not_its_amount(samples):
    config = planted.PlantedConfig()
    assert config.class_names == ("stroma", "serous_carcinoma", "other_carcinoma")
    areas = {1: [], 2: []}
    for s in samples:
        area = int(s.mask.sum())
        _, components = ndimage.label(s.mask)
        assert components == len(s.patches)
        assert config.min_area(s.label) <= area <= config.max_area(s.label)
        if s.label == 0:
            assert area == 0 and not s.patches
            continue
        assert {p.source for p in s.patches} == {planted.KIND_SOURCES[s.label]}
        assert 1 <= len(s.patches) <= 4
        # every patch covers at least a quarter of some 128-pixel region
        assert all(p.box[2] - p.box[0] >= 128 for p in s.patches)
        areas[s.label].append(area)
    # both carcinoma classes draw their amounts from the same distribution
    assert config.min_area(1) == config.min_area(2) and config.max_area(1) == config.max_area(2)
    assert areas[1] and areas[2]


def test_labels_consistent_with_masks(amount_samples):
    config = planted.PlantedConfig(task="amount")
    samples = amount_samples
    for s in samples:
        area = int(s.mask.sum())
        _, components = ndimage.label(s.mask)
        assert components == len(s.patches)
        assert config.min_area(s.label) <= area <= config.max_area(s.label)
        if s.label == 0:
            assert area == 0
        elif s.label == 1:
            assert components in (1, 2)
        else:
            assert components in (2, 4, 5, 6)
    # the classes are separable by planted area alone
    assert config.max_area(1) < config.min_area(2)


def test_planted_pixels_equal_source_pixels(data_root, samples, amount_samples):
    sources = planted.load_sources(str(data_root), planted.PlantedConfig())
    checked = 0
    for s in samples + amount_samples:
        rebuilt = np.zeros_like(s.mask)
        for p in s.patches:
            x0, y0, x1, y1 = p.box
            sx0, sy0, sx1, sy1 = p.source_box
            source = sources.carcinoma[p.source]
            np.testing.assert_array_equal(s.image[y0:y1, x0:x1], source[sy0:sy1, sx0:sx1])
            rebuilt[y0:y1, x0:x1] = True
            checked += 1
        np.testing.assert_array_equal(rebuilt, s.mask)
    assert checked >= 8


def test_tumour_crops_come_from_dense_tumour_windows(data_root, amount_samples):
    """Crops of the nest tile hold more carcinoma nuclei than the tile on average."""
    with np.load(data_root / "tiles" / "hgsc_nest_type_mask.npz") as npz:
        types = npz["nuc_raster"]
    dominant = np.bincount(types[types > 0]).argmax()
    tile_density = (types == dominant).mean()
    crops = [p.source_box for s in amount_samples for p in s.patches if p.source == "hgsc_nest.jpg"]
    assert crops
    density = np.mean([(types[y0:y1, x0:x1] == dominant).mean() for x0, y0, x1, y1 in crops])
    assert density > tile_density


def test_image_folder_layout_and_masks_round_trip(tmp_path, data_root):
    out = planted.write_image_folder(tmp_path / "task", {"train": 3, "val": 3}, seed=1, root=data_root)
    meta = json.loads((out / "planted.json").read_text())
    assert meta["class_names"] == list(planted.CLASS_NAMES)
    regenerated = planted.generate(3, seed=1001, root=data_root)  # split index 1 of seed 1
    for record, sample in zip(meta["images"]["val"], regenerated, strict=True):
        assert (out / record["image"]).parent.name == planted.CLASS_NAMES[sample.label]
        np.testing.assert_array_equal(planted.read_mask(out / record["mask"]), sample.mask)
    assert {p.name for p in (out / "train").iterdir()} <= set(planted.CLASS_NAMES)
    assert not list(out.rglob("*.tmp"))


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown planted task"):
        planted.PlantedConfig(task="size")
