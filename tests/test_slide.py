"""Slides on the real files: geometry, exact pixels, laziness, RoI reads and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
from scorenet.errors import ScoreNetInputError
from scorenet.pyramid import chunk_size, slide_pyramid
from scorenet.slide import open_slide, read_roi, rgba_to_rgb

SLIDES = ["cmu_small_region.svs", "tcga-cr-7395-01a-01-ts1.svs", "boxes.tiff", "small.svs"]
TCGA = "tcga-cr-7395-01a-01-ts1.svs"


def _openslide_rgb(path: Path, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    with openslide.OpenSlide(path) as reference:
        return rgba_to_rgb(np.asarray(reference.read_region(location, level, size)))


class CountingReads:
    """Wraps a slide's read_region (whichever backend decodes) and records every call."""

    def __init__(self, slide) -> None:
        self.calls: list[tuple] = []
        self._read = slide.read_region
        slide.read_region = self

    def __call__(self, location, level, size):
        self.calls.append((location, level, size))
        return self._read(location, level, size)


@pytest.mark.parametrize("name", SLIDES)
def test_levels_match_openslide(slides_dir: Path, name: str):
    with openslide.OpenSlide(slides_dir / name) as reference, open_slide(slides_dir / name) as slide:
        assert slide.level_count == reference.level_count
        assert slide.level_dimensions == tuple(reference.level_dimensions)
        assert slide.level_downsamples == pytest.approx(reference.level_downsamples)
        pyramid = slide_pyramid(slide)
        assert [level.shape for level in pyramid] == [(h, w, 3) for w, h in reference.level_dimensions]
    assert all(level.dtype == np.uint8 for level in pyramid)


def test_multilevel_metadata(slides_dir: Path):
    with open_slide(slides_dir / TCGA) as slide:
        assert slide.level_count == 2
        assert slide.level_dimensions == ((4443, 3567), (2221, 1783))
        assert slide.vendor == "aperio"
        assert slide.mpp is None  # this frozen section records no pixel size
        assert list(slide.associated_images) == ["thumbnail"]
        assert slide.associated_images["thumbnail"].shape == (768, 956, 3)
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        assert slide.mpp == pytest.approx(0.499)
        assert slide.objective_power == 20
        assert set(slide.associated_images) == {"label", "macro", "thumbnail"}
        meta = slide.metadata()
    assert meta["path"].endswith("cmu_small_region.svs") and meta["level_downsamples"] == [1.0]


@pytest.mark.parametrize("name", ["tcga-cr-7395-01a-01-ts1.svs", "boxes.tiff", "cmu_small_region.svs"])
def test_random_level0_crops_equal_read_region(slides_dir: Path, name: str):
    rng = np.random.default_rng(0)
    with open_slide(slides_dir / name) as slide:
        level0 = slide_pyramid(slide)[0]
        height, width, _ = level0.shape
        for _ in range(6):
            h, w = (
                rng.integers(1, min(height, 700), endpoint=True),
                rng.integers(1, min(width, 700), endpoint=True),
            )
            y, x = rng.integers(0, height - h, endpoint=True), rng.integers(0, width - w, endpoint=True)
            crop = level0[y : y + h, x : x + w].compute()
            assert np.array_equal(
                crop, _openslide_rgb(slides_dir / name, (int(x), int(y)), 0, (int(w), int(h)))
            )


@pytest.mark.parametrize("name", ["tcga-cr-7395-01a-01-ts1.svs", "boxes.tiff"])
def test_random_crops_on_every_level_equal_read_region_of_their_tiles(slides_dir: Path, name: str):
    # At a level whose downsample is not an integer (2.0005 here) OpenSlide resamples a read whose
    # level-0 origin falls between level pixels, so the reference is the read of the chunk-aligned window
    # the crop lies in: the layer must add nothing to OpenSlide's pixels. (The default tifffile backend's
    # exact pixels are tested in test_tiff_backend.py.)
    rng = np.random.default_rng(1)
    with open_slide(slides_dir / name, backend="openslide") as slide:
        for level, array in enumerate(slide_pyramid(slide)):
            rows, cols = chunk_size(slide, level)
            height, width, _ = array.shape
            for _ in range(4):
                y, x = int(rng.integers(0, height - 1)), int(rng.integers(0, width - 1))
                h, w = min(int(rng.integers(1, 300)), height - y), min(int(rng.integers(1, 300)), width - x)
                crop = array[y : y + h, x : x + w].compute()
                y0, x0 = y // rows * rows, x // cols * cols
                if y + h > y0 + rows or x + w > x0 + cols:
                    h, w = min(h, y0 + rows - y), min(w, x0 + cols - x)  # stay within one chunk
                    crop = crop[:h, :w]
                ds = slide.level_downsamples[level]
                window = _openslide_rgb(
                    slides_dir / name,
                    (round(x0 * ds), round(y0 * ds)),
                    level,
                    (min(cols, width - x0), min(rows, height - y0)),
                )
                assert np.array_equal(crop, window[y - y0 : y - y0 + h, x - x0 : x - x0 + w])


def test_building_the_pyramid_reads_nothing_and_a_crop_reads_only_its_chunks(slides_dir: Path):
    with open_slide(slides_dir / TCGA) as slide:
        reads = CountingReads(slide)
        pyramid = slide_pyramid(slide)
        assert reads.calls == []
        rows, cols = chunk_size(slide, 0)
        assert (rows, cols) == (1024, 1024)  # four 256-pixel tiles a side
        pyramid[0][1100:1200, 2000:2100].compute()  # spans two chunks in x
        assert sorted(reads.calls) == [((1024, 1024), 0, (1024, 1024)), ((2048, 1024), 0, (1024, 1024))]
        pyramid[1][:, :].compute()
        assert {level for _, level, _ in reads.calls[2:]} == {1}
        assert len(reads.calls) == 2 + pyramid[1].npartitions


def test_rgba_composited_on_white():
    rgba = np.array([[[10, 20, 30, 255], [0, 0, 0, 0], [200, 100, 0, 128]]], dtype=np.uint8)
    rgb = rgba_to_rgb(rgba)
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [227, 177, 127]


def test_read_roi_level0_equals_read_region(slides_dir: Path):
    roi = read_roi(slides_dir / TCGA, 1000, 800, 640, 480)
    assert roi.image.shape == (480, 640, 3) and roi.scale == 1.0 and not roi.padded
    assert np.array_equal(roi.image, _openslide_rgb(slides_dir / TCGA, (1000, 800), 0, (640, 480)))


def test_read_roi_at_coarser_resolution_uses_the_matching_level(slides_dir: Path):
    with open_slide(slides_dir / "boxes.tiff") as slide:
        reads = CountingReads(slide)
        exact = read_roi(slide, 20, 40, 200, 160, mpp=slide.mpp * 2)  # level 1 matches exactly
        assert reads.calls[-1][1:] == (1, (100, 80))
        assert np.array_equal(exact.image, _openslide_rgb(slides_dir / "boxes.tiff", (20, 40), 1, (100, 80)))
        between = read_roi(slide, 20, 40, 200, 160, mpp=slide.mpp * 3)  # no level: level 1, resampled
        assert reads.calls[-1][1] == 1 and between.image.shape == (53, 67, 3)
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        roi = read_roi(slide, 200, 300, 1000, 800, mpp=0.998)
        assert roi.image.shape == (400, 500, 3)
        assert roi.scale == pytest.approx(0.5) and roi.mpp == pytest.approx(0.998)
        full = read_roi(slide, 200, 300, 1000, 800).image.astype(float)
        # area averaging: each output pixel is the mean of a 2 x 2 block of level 0
        blocks = full.reshape(400, 2, 500, 2, 3).mean(axis=(1, 3))
        assert np.abs(roi.image - blocks).max() <= 1.0
        five_x = read_roi(slide, 200, 300, 1000, 800, magnification=5)
        assert five_x.image.shape == (200, 250, 3) and five_x.mpp == pytest.approx(0.499 * 4)


def test_read_roi_partly_outside_is_padded_white_and_reported(slides_dir: Path):
    with open_slide(slides_dir / TCGA) as slide:
        roi = read_roi(slide, -100, 1700, 300, 200)  # tissue reaches the left edge here
        inside = read_roi(slide, 0, 1700, 200, 200).image
    assert roi.padded and roi.valid == (0, 1700, 200, 1900)
    assert roi.image.shape == (200, 300, 3)
    assert (roi.image[:, :100] == 255).all()
    assert np.array_equal(roi.image[:, 100:], inside) and (inside < 200).mean() > 0.2


def test_read_roi_errors_name_the_file(slides_dir: Path):
    path = slides_dir / TCGA
    with pytest.raises(ScoreNetInputError, match="outside the slide") as err:
        read_roi(path, 10_000, 10_000, 100, 100)
    assert str(path) in str(err.value)
    with pytest.raises(ScoreNetInputError, match="no pixel size"):
        read_roi(path, 0, 0, 100, 100, mpp=1.0)
    with pytest.raises(ScoreNetInputError, match="must be positive"):
        read_roi(path, 0, 0, 0, 100)


def test_plain_image_is_a_one_level_slide(tiles_dir: Path):
    from PIL import Image

    with open_slide(tiles_dir / "norm_tile.jpg") as slide:
        assert slide.level_dimensions == ((299, 299),) and slide.vendor == "image" and slide.mpp is None
        (level,) = slide_pyramid(slide)
        pixels = level.compute()
    assert np.array_equal(pixels, np.asarray(Image.open(tiles_dir / "norm_tile.jpg").convert("RGB")))


@pytest.fixture
def broken_files(tmp_path: Path, slides_dir: Path) -> dict[str, Path]:
    raw = (slides_dir / "cmu_small_region.svs").read_bytes()
    files = {
        "truncated": tmp_path / "truncated.svs",
        "text": tmp_path / "notes.svs",
        "bad_png": tmp_path / "broken.png",
        "unknown": tmp_path / "slide.xyz",
    }
    files["truncated"].write_bytes(raw[: len(raw) * 2 // 3])
    files["text"].write_text("not a slide")
    files["bad_png"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    files["unknown"].write_bytes(b"whatever")
    return files


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("truncated", "truncated"),
        ("text", "not a readable TIFF"),
        ("bad_png", "not a readable image"),
        ("unknown", "unsupported file type '.xyz'"),
    ],
)
def test_unreadable_files_give_a_message_naming_the_file(broken_files, key: str, message: str):
    with pytest.raises(ScoreNetInputError, match=message) as err:
        open_slide(broken_files[key])
    assert str(err.value).startswith(str(broken_files[key]))


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(ScoreNetInputError, match="no such file"):
        open_slide(tmp_path / "missing.svs")
    with pytest.raises(ScoreNetInputError, match="is a folder"):
        open_slide(tmp_path)


def test_parallel_band_reads_equal_one_read_and_start_on_tile_rows(slides_dir: Path):
    from scorenet.slide import read_region_parallel

    with open_slide(slides_dir / TCGA) as slide:
        reads = CountingReads(slide)
        image = read_region_parallel(slide, (37, 101), 0, (1300, 1200), min_pixels=0)
        assert len(reads.calls) >= 2
        # every band after the first starts on a stored tile row, so no tile is decoded twice
        assert all(y % 256 == 0 for (_, y), _, _ in reads.calls if y != 101)
    assert np.array_equal(image, _openslide_rgb(slides_dir / TCGA, (37, 101), 0, (1300, 1200)))


def test_large_plain_image_reads_whole_on_a_fresh_handle(tiles_dir: Path):
    from PIL import Image

    path = tiles_dir / "hgsc_nest.jpg"  # 1500 x 1500: large enough for the banded read of slides
    roi = read_roi(path, 0, 0, 1500, 1500)
    assert np.array_equal(roi.image, np.asarray(Image.open(path).convert("RGB")))
