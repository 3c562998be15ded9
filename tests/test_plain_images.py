"""Plain images: real tiles read on many threads, every mode and bit depth against an independent
computation of the documented rule, percentiles, the greyscale warning, bad files and a huge TIFF."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import cv2
import dask
import numpy as np
import pytest
import tifffile
from PIL import Image
from scorenet import plain_image
from scorenet.errors import ScoreNetInputError
from scorenet.plain_image import PlainImageSlide, halve
from scorenet.pyramid import slide_pyramid
from scorenet.slide import Slide, open_slide, read_roi

REAL_TILES = ["hgsc_nest.jpg", "hgsc_stromal_he.jpg", "target_image.png"]
SIZE = (1300, 1100)  # (height, width): several 1024-pixel chunks, read on several threads


def _pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _threaded(array, times: int = 10) -> list[np.ndarray]:
    with dask.config.set(scheduler="threads", num_workers=8):
        return [array.compute() for _ in range(times)]


# ---- independent computations of the rule (docs/opening-slides.md) ----------------------------------


def _full_range_16(v: np.ndarray) -> np.ndarray:
    """uint16 to uint8 over 0..65535, round half up, in integers: floor((2 * 255 * v + 65535) / 131070)."""
    return ((v.astype(np.int64) * 510 + 65535) // 131070).astype(np.uint8)


def _stretch(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    x = np.floor((v.astype(np.float64) - lo) * 255 / (hi - lo) + 0.5)
    return np.nan_to_num(np.clip(x, 0, 255), nan=0).astype(np.uint8)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    c, a = rgb.astype(np.float64), alpha[..., None].astype(np.float64)
    return np.floor(c * a / 255 + 255 * (1 - a / 255) + 0.5).astype(np.uint8)


def _grey3(v: np.ndarray) -> np.ndarray:
    return np.repeat(v[..., None], 3, axis=2)


def _spanning(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Random samples over the type's whole range, with its two ends in the first pixels."""
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    values.reshape(-1)[:2] = info.min, info.max
    return values


def _case(name: str, folder: Path) -> tuple[Path, np.ndarray]:
    """Write one test file; return it with the RGB it must read as."""
    rng = np.random.default_rng(sum(map(ord, name)))
    h, w = SIZE
    if name == "1-bit png":
        bits = rng.random((h, w)) > 0.5
        Image.fromarray(bits).save(path := folder / "bits.png")
        return path, _grey3(np.where(bits, 255, 0).astype(np.uint8))
    if name == "1-bit tiff, min-is-white":
        bits = rng.random((h, w)) > 0.5
        tifffile.imwrite(path := folder / "bits.tif", bits, photometric="miniswhite")
        return path, _grey3(np.where(bits, 0, 255).astype(np.uint8))
    if name == "8-bit grey png":
        grey = _spanning(rng, (h, w), np.uint8)
        Image.fromarray(grey).save(path := folder / "grey8.png")
        return path, _grey3(grey)
    if name == "16-bit grey png":
        grey = _spanning(rng, (h, w), np.uint16)
        Image.fromarray(grey).save(path := folder / "grey16.png")
        return path, _grey3(_full_range_16(grey))
    if name == "16-bit grey tiled tiff":  # a generic tiled TIFF: OpenSlide would keep the high byte
        grey = _spanning(rng, (h, w), np.uint16)
        tifffile.imwrite(path := folder / "grey16.tif", grey, tile=(256, 256), compression="zlib")
        return path, _grey3(_full_range_16(grey))
    if name == "16-bit rgb png":
        rgb = _spanning(rng, (h, w, 3), np.uint16)
        cv2.imwrite(str(path := folder / "rgb16.png"), rgb[..., ::-1])  # OpenCV writes BGR
        return path, _full_range_16(rgb)
    if name == "16-bit rgb tiff":
        rgb = _spanning(rng, (h, w, 3), np.uint16)
        tifffile.imwrite(path := folder / "rgb16.tif", rgb, photometric="rgb")
        return path, _full_range_16(rgb)
    if name == "rgb tiff, separate planes":
        rgb = _spanning(rng, (3, h, w), np.uint8)
        tifffile.imwrite(path := folder / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
        return path, rgb.transpose(1, 2, 0)
    if name == "rgba png":
        rgba = _spanning(rng, (h, w, 4), np.uint8)
        rgba[:10, :, 3] = 255  # some opaque and some fully transparent pixels too
        rgba[10:20, :, 3] = 0
        Image.fromarray(rgba).save(path := folder / "rgba.png")
        return path, _over_white(rgba[..., :3], rgba[..., 3])
    if name == "palette png":
        index = rng.integers(0, 5, (h, w), dtype=np.uint8)
        palette = np.array([[10, 20, 30], [200, 100, 0], [0, 255, 0], [90, 0, 160], [1, 2, 3]], np.uint8)
        image = Image.fromarray(index, mode="P")
        image.putpalette(palette.ravel().tolist())
        image.save(path := folder / "palette.png", transparency=4)  # entry 4 fully transparent
        expected = palette[index]
        expected[index == 4] = 255
        return path, expected
    if name == "float32 tiff":
        values = rng.random((h, w), dtype=np.float32)
        values[0, :4] = -0.5, 1.5, np.nan, 0.5  # clipped, clipped, NaN, exactly half
        tifffile.imwrite(path := folder / "float.tif", values)
        return path, _grey3(_stretch(values, 0.0, 1.0))
    raise AssertionError(name)


CASES = [
    "1-bit png",
    "1-bit tiff, min-is-white",
    "8-bit grey png",
    "16-bit grey png",
    "16-bit grey tiled tiff",
    "16-bit rgb png",
    "16-bit rgb tiff",
    "rgb tiff, separate planes",
    "rgba png",
    "palette png",
    "float32 tiff",
]


# ---- real tiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_TILES)
def test_real_tile_read_on_many_threads_equals_pillow(tiles_dir: Path, name: str):
    # the bug: Pillow-backed ImageSlide chunks read on dask's threads gave "image file is truncated"
    reference = _pillow_rgb(tiles_dir / name)
    with open_slide(tiles_dir / name) as slide:
        assert isinstance(slide, PlainImageSlide) and slide.notes == ()
        (level,) = slide_pyramid(slide, target_chunk=512)  # the 1000-pixel tile too spans chunks
        assert level.npartitions >= 4
        for pixels in _threaded(level, times=20):
            assert np.array_equal(pixels, reference)
        assert np.array_equal(read_roi(slide, 0, 0, *slide.dimensions).image, reference)


def test_16_bit_copy_of_a_real_tile_reads_as_the_tile(tiles_dir: Path, tmp_path: Path):
    # v * 257 spans 0..65535 exactly as v spans 0..255: the rule must give the 8-bit tile back
    reference = _pillow_rgb(tiles_dir / "hgsc_nest.jpg")
    tifffile.imwrite(tmp_path / "nest16.tif", reference.astype(np.uint16) * 257, photometric="rgb")
    with open_slide(tmp_path / "nest16.tif") as slide:
        assert np.array_equal(_threaded(slide_pyramid(slide)[0], times=3)[2], reference)


@pytest.mark.gui
def test_real_tile_opens_in_napari_and_reads_on_its_threads(make_napari_viewer, tiles_dir: Path):
    path = tiles_dir / "hgsc_nest.jpg"
    viewer = make_napari_viewer(show=False)
    (layer,) = viewer.open(str(path), plugin="napari-scorenet")
    assert layer.rgb and not layer.multiscale and layer.metadata["vendor"] == "image"
    reference = _pillow_rgb(path)
    for pixels in _threaded(layer.data):
        assert np.array_equal(pixels, reference)
    viewer.window._qt_window.grab()  # a never-painted window screenshots black
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 10  # the tissue was drawn


def test_open_time_of_a_real_tile(tiles_dir: Path):
    start = time.perf_counter()
    with open_slide(tiles_dir / "hgsc_nest.jpg") as slide:
        elapsed = time.perf_counter() - start
        assert slide.level_count == 1
    assert elapsed < 2.0  # decoded once (about 0.05 s on the development machine)


# ---- every mode and bit depth ----------------------------------------------------------------------


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. NaN cast to uint8, which is undefined
@pytest.mark.parametrize("case", CASES)
def test_mode_and_bit_depth_read_by_the_rule(tmp_path: Path, case: str):
    path, expected = _case(case, tmp_path)
    with open_slide(path) as slide:
        assert isinstance(slide, PlainImageSlide) and slide.dimensions == (SIZE[1], SIZE[0])
        roi = read_roi(slide, 0, 0, *slide.dimensions).image
        np.testing.assert_array_equal(roi, expected)
        for pixels in _threaded(slide_pyramid(slide)[0], times=3):
            np.testing.assert_array_equal(pixels, expected)
        inner = read_roi(slide, 517, 203, 300, 400).image  # a region across chunk borders
        np.testing.assert_array_equal(inner, expected[203:603, 517:817])


def test_lzw_tiff_without_imagecodecs_is_decoded_whole_by_pillow(tmp_path: Path, monkeypatch):
    # LZW, the most common TIFF compression (Pillow's), needs imagecodecs in tifffile: without it a
    # small image is decoded by Pillow, a large one refused (it would have to be decoded whole)
    try:
        import imagecodecs  # noqa: F401

        has_codecs = True
    except ImportError:
        has_codecs = False
    rng = np.random.default_rng(9)
    rgb = _spanning(rng, (300, 400, 3), np.uint8)
    grey = _spanning(rng, (300, 400), np.uint16)
    Image.fromarray(rgb).save(tmp_path / "rgb.tif", compression="tiff_lzw")
    Image.fromarray(grey).save(tmp_path / "grey.tif", compression="tiff_lzw")
    for name, expected in [("rgb.tif", rgb), ("grey.tif", _grey3(_full_range_16(grey)))]:
        with open_slide(tmp_path / name) as slide:
            assert slide.properties["scorenet.decoder"] == ("tifffile" if has_codecs else "pillow")
            np.testing.assert_array_equal(slide.read_region((0, 0), 0, (400, 300)), expected)
    monkeypatch.setattr(plain_image, "LAZY_TIFF_PIXELS", 0)
    if has_codecs:
        with open_slide(tmp_path / "rgb.tif") as slide:
            np.testing.assert_array_equal(slide.read_region((0, 0), 0, (400, 300)), rgb)
    else:
        with pytest.raises(ScoreNetInputError, match="imagecodecs.*it is not decoded whole"):
            open_slide(tmp_path / "rgb.tif")


def test_float_values_outside_0_1_are_noted(tmp_path: Path):
    path, _ = _case("float32 tiff", tmp_path)
    with open_slide(path) as slide:
        assert any("outside 0..1 are clipped" in note and "-0.5..1.5" in note for note in slide.notes)


def test_openslide_keeps_the_slides_and_8_bit_rgb_tiled_tiffs(slides_dir: Path, tmp_path: Path):
    for name in ("boxes.tiff", "cmu_small_region.svs"):
        with open_slide(slides_dir / name) as slide:
            assert type(slide) is Slide
    rgb = np.random.default_rng(0).integers(0, 256, (600, 700, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb8.tif", rgb, tile=(256, 256), photometric="rgb")
    with open_slide(tmp_path / "rgb8.tif") as slide:
        assert type(slide) is Slide and slide.vendor == "generic-tiff"
        assert np.array_equal(slide.read_region((0, 0), 0, (700, 600)), rgb)


# ---- percentiles -----------------------------------------------------------------------------------


def test_percentiles_stretch_16_bit_grey_and_rgb(tmp_path: Path):
    rng = np.random.default_rng(5)
    grey = rng.normal(3000, 500, (400, 500)).clip(0, 65535).astype(np.uint16)  # a dim 12-bit-like image
    Image.fromarray(grey).save(tmp_path / "dim.png")
    with open_slide(tmp_path / "dim.png") as slide:
        assert read_roi(slide, 0, 0, 500, 400).image.max() < 30  # the full-range default: dark
    lo, hi = np.percentile(grey, [1, 99])
    with open_slide(tmp_path / "dim.png", percentiles=(1, 99)) as slide:
        image = read_roi(slide, 0, 0, 500, 400).image
        assert slide.properties["scorenet.value-range"] == f"{lo:g} {hi:g}"
    np.testing.assert_array_equal(image, _grey3(_stretch(grey, lo, hi)))
    assert image.min() == 0 and image.max() == 255

    rgb = (rng.random((300, 200, 3)) * [2000, 4000, 8000] + 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    lo, hi = np.percentile(rgb, [0.5, 99.5])  # one range for all channels: colours keep their balance
    with open_slide(tmp_path / "rgb.tif", percentiles=(0.5, 99.5)) as slide:
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (200, 300)), _stretch(rgb, lo, hi))


def test_percentiles_leave_8_bit_images_alone_and_are_checked(tiles_dir: Path):
    path = tiles_dir / "norm_tile.jpg"
    with open_slide(path, percentiles=(2, 98)) as slide:
        assert np.array_equal(slide.read_region((0, 0), 0, slide.dimensions), _pillow_rgb(path))
    for bad in [(50, 10), (-1, 50), (1, 101), (1,), "x"]:
        with pytest.raises(ScoreNetInputError, match="percentiles"):
            open_slide(path, percentiles=bad)


# ---- the greyscale warning -------------------------------------------------------------------------


def test_greyscale_warning_once_per_file_and_as_a_napari_notification(tmp_path: Path, caplog, monkeypatch):
    import napari.utils.notifications as notifications

    from napari_scorenet._reader import read_slide

    path, _ = _case("16-bit grey png", tmp_path)
    with caplog.at_level(logging.WARNING, logger="scorenet"):
        for _ in range(3):
            with open_slide(path) as slide:
                read_roi(slide, 0, 0, 100, 100)
                (note,) = slide.notes
    records = [r for r in caplog.records if "greyscale" in r.getMessage()]
    assert len(records) == 1 and records[0].getMessage() == note
    assert note.startswith(str(path)) and "\n" not in note

    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    ((_, kwargs, _),) = read_slide(str(path))
    assert shown == [note] and kwargs["metadata"]["notes"] == [note]
    rgb_path, _ = _case("16-bit rgb png", tmp_path)
    read_slide(str(rgb_path))
    assert shown == [note]  # colour images say nothing


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hgsc_nest.jpg", "target_image.png"])
def test_truncated_image_is_a_clear_error(tiles_dir: Path, tmp_path: Path, name: str, monkeypatch):
    import napari.utils.notifications as notifications

    from napari_scorenet._reader import read_slide

    data = (tiles_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 3 // 5])
    with pytest.raises(ScoreNetInputError, match="truncated") as err:
        open_slide(path)
    assert str(err.value).startswith(str(path))
    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    assert read_slide(str(path)) == [(None,)]
    assert len(shown) == 1 and shown[0].startswith(str(path))


def test_images_too_large_to_decode_are_refused_before_decoding(tiles_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(plain_image, "MAX_DECODED_PIXELS", 1000 * 1000)
    with pytest.raises(ScoreNetInputError, match=r"too large to decode into memory \(1500 x 1500"):
        open_slide(tiles_dir / "hgsc_nest.jpg")
    # a large TIFF stored as one compressed strip cannot be read region by region either
    monkeypatch.setattr(plain_image, "LAZY_TIFF_PIXELS", 100 * 100)
    monkeypatch.setattr(plain_image, "MAX_SEGMENT_BYTES", 1 << 16)
    strip = tmp_path / "strip.tif"
    tifffile.imwrite(strip, np.zeros((400, 500), np.uint8), compression="zlib", rowsperstrip=400)
    with pytest.raises(ScoreNetInputError, match="too large to read region by region; save it as a tiled"):
        open_slide(strip)


# ---- pyramids --------------------------------------------------------------------------------------


def _mean_of_2x2(image: np.ndarray) -> np.ndarray:
    """The documented rule in numpy: the mean of each 2 x 2 block, rounded half up; odd edges dropped."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].astype(np.int64).reshape(h, 2, w, 2, -1).sum(axis=(1, 3))
    return ((blocks + 2) // 4).astype(np.uint8)


def test_halve_is_the_rounded_mean_of_2x2_blocks():
    image = np.random.default_rng(2).integers(0, 256, (201, 303, 3), dtype=np.uint8)
    assert np.array_equal(halve(image), _mean_of_2x2(image))
    assert np.array_equal(halve(image[..., :1]), _mean_of_2x2(image[..., :1]))


def test_large_plain_image_gets_a_lazily_built_pyramid(tiles_dir: Path, monkeypatch):
    monkeypatch.setattr(plain_image, "PYRAMID_MIN_SIDE", 1000)  # treat the 1500-pixel tile as large
    path = tiles_dir / "hgsc_nest.jpg"
    reference = _pillow_rgb(path)
    with open_slide(path) as slide:
        assert slide.level_dimensions == ((1500, 1500), (750, 750)) and slide.level_downsamples == (1.0, 2.0)
        assert slide._levels[1] is None  # built on first use
        level0, level1 = slide_pyramid(slide)
        assert np.array_equal(_threaded(level1, times=1)[0], _mean_of_2x2(reference))
        assert np.array_equal(_threaded(level0, times=1)[0], reference)
        # read_region at level 1 takes its location in level-0 pixels, as OpenSlide
        part = slide.read_region((200, 100), 1, (50, 40))
        assert np.array_equal(part, _mean_of_2x2(reference)[50:90, 100:150])


STORAGE = {
    "tiled, zlib": {"tile": (256, 256), "compression": "zlib"},
    "separate planes in strips, zlib, big-endian": {
        "planarconfig": "separate",
        "rowsperstrip": 64,
        "compression": "zlib",
        "byteorder": ">",
    },
    "uncompressed (memory-mapped)": {},
}


@pytest.mark.parametrize("storage", STORAGE)
def test_lazy_and_in_memory_reads_of_one_tiff_agree_on_every_level(tmp_path: Path, monkeypatch, storage: str):
    path, expected = _case("16-bit rgb tiff", tmp_path)
    rgb = tifffile.imread(path)
    if STORAGE[storage].get("planarconfig") == "separate":
        rgb = rgb.transpose(2, 0, 1)
    tifffile.imwrite(path, rgb, photometric="rgb", **STORAGE[storage])
    monkeypatch.setattr(plain_image, "PYRAMID_MIN_SIDE", 600)
    with open_slide(path) as in_memory:
        assert in_memory.properties["scorenet.decoder"] == "tifffile"
        levels = [level.compute() for level in slide_pyramid(in_memory)]
    assert len(levels) == 2 and np.array_equal(levels[0], expected)
    monkeypatch.setattr(plain_image, "LAZY_TIFF_PIXELS", 0)
    with open_slide(path) as lazy:
        assert lazy.properties["scorenet.decoder"] == "tifffile, region by region"
        assert lazy.tile_size(0) == STORAGE[storage].get("tile", (0, 0))[::-1]
        assert (lazy._regions._memmap is not None) == (storage == "uncompressed (memory-mapped)")
        for level, array in zip(levels, slide_pyramid(lazy), strict=True):
            assert np.array_equal(_threaded(array, times=2)[1], level)


# ---- a huge TIFF -----------------------------------------------------------------------------------

HUGE = 30_000
HUGE_TILE = 1024


def _tile_value(row: int, col: int) -> int:
    return (row * 7 + col * 13) % 256


@pytest.fixture(scope="module")
def huge_tiff(tmp_path_factory) -> Path:
    """A 30000 x 30000 uint8 tiled TIFF (900 Mpx, 4 MB on disk), written tile by tile."""
    path = tmp_path_factory.mktemp("huge") / "huge.tif"

    def tiles():
        for row in range(0, HUGE // HUGE_TILE + 1):
            for col in range(0, HUGE // HUGE_TILE + 1):
                yield np.full((HUGE_TILE, HUGE_TILE), _tile_value(row, col), np.uint8)

    tifffile.imwrite(
        path,
        tiles(),
        shape=(HUGE, HUGE),
        dtype=np.uint8,
        tile=(HUGE_TILE, HUGE_TILE),
        compression="zlib",
        compressionargs={"level": 1},
    )
    return path


@pytest.mark.slow
def test_huge_tiff_opens_lazily_and_reads_only_its_tiles(huge_tiff: Path):
    tracemalloc.start()
    try:
        start = time.perf_counter()
        slide = open_slide(huge_tiff)
        opened = time.perf_counter() - start
        pyramid = slide_pyramid(slide)
        region = pyramid[0][5000:7000, 9000:11000].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with slide:
        assert opened < 1.0  # about 5 ms: no pixel is decoded to open it
        assert peak < 100 * 2**20  # the whole image would be 900 MB grey, 2.7 GB as RGB
        assert slide.level_dimensions[-1] == (937, 937) and len(pyramid) == 6
        rows, cols = np.mgrid[5000:7000, 9000:11000] // HUGE_TILE
        assert np.array_equal(region, _grey3(_tile_value(rows, cols).astype(np.uint8)))
        # level 2: 4 x 4 blocks of level 0, each inside one constant tile
        coarse = slide.read_region((4096, 8192), 2, (300, 200))
        rows, cols = (np.mgrid[0:200, 0:300] * 4 + [[[8192]], [[4096]]]) // HUGE_TILE
        assert np.array_equal(coarse, _grey3(_tile_value(rows, cols).astype(np.uint8)))
