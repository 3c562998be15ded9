"""The tifffile backend: every level's pixels are the stored ones, metadata as OpenSlide's, clear errors."""

from __future__ import annotations

import logging
import math
import shutil
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from scorenet import slide as slide_module
from scorenet import tiff_backend
from scorenet.errors import ScoreNetInputError
from scorenet.pyramid import slide_pyramid
from scorenet.slide import Slide, open_slide, read_region_parallel, read_roi
from scorenet.tiff_backend import ycbcr_to_rgb

SHARED = ["cmu_small_region.svs", "tcga-cr-7395-01a-01-ts1.svs", "small.svs", "boxes.tiff"]
# the pyramid: level 1 is not level 0 halved exactly (downsample 1.9995 and 3.999)
PYRAMID = ((4443, 3567), (2222, 1784), (1111, 892))
MPP = 0.25


def stored_levels(path: Path) -> list[np.ndarray]:
    """Each pyramid level decoded by tifffile on its own (the reference), as (h, w, 3)."""
    with tifffile.TiffFile(path) as tif:
        return [level.asarray()[..., :3] for level in tif.series[0].levels]


@pytest.fixture(scope="module")
def pyramid_pixels(slides_dir: Path) -> list[np.ndarray]:
    """Real H&E (the TCGA slide's level 0) and its area-averaged reductions to the sizes of PYRAMID."""
    with tifffile.TiffFile(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as tif:
        base = tif.series[0].levels[0].asarray()
    assert base.shape[1::-1] == PYRAMID[0]
    return [base] + [cv2.resize(base, size, interpolation=cv2.INTER_AREA) for size in PYRAMID[1:]]


@pytest.fixture(scope="module")
def pyramid_tiff(tmp_path_factory: pytest.TempPathFactory, pyramid_pixels: list[np.ndarray]) -> Path:
    """A generic JPEG-tiled pyramidal TIFF with non-integer downsamples, of real H&E (the TCGA slide)."""
    path = tmp_path_factory.mktemp("pyramid") / "pyramid.tif"
    resolution = (1e4 / MPP, 1e4 / MPP)
    with tifffile.TiffWriter(path) as writer:
        for level, pixels in enumerate(pyramid_pixels):
            writer.write(
                pixels,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",  # tifffile stores JPEG as YCbCr: the colour conversion is exercised
                subfiletype=0 if level == 0 else 1,
                resolution=resolution,
                resolutionunit="CENTIMETER",
            )
    return path


def assert_levels_exact(slide: Slide, reference: list[np.ndarray]) -> None:
    """Every level, chunk by chunk through the dask pyramid and at odd offsets, equals the reference."""
    assert slide.backend == "tifffile"
    pyramid = slide_pyramid(slide, target_chunk=512)
    rng = np.random.default_rng(0)
    for level, (array, stored) in enumerate(zip(pyramid, reference, strict=True)):
        assert array.shape == stored.shape
        for block in array.to_delayed().ravel():
            crop = block.compute()
            assert crop.dtype == np.uint8
        np.testing.assert_array_equal(array.compute(), stored, err_msg=f"level {level}")
        downsample = slide.level_downsamples[level]
        height, width = stored.shape[:2]
        for _ in range(5):  # read_region as callers call it: a level-0 location, a size in the level
            x, y = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
            w, h = min(97, width - x), min(61, height - y)
            got = slide.read_region((round(x * downsample), round(y * downsample)), level, (w, h))
            np.testing.assert_array_equal(
                got, stored[y : y + h, x : x + w], err_msg=f"level {level} at {x},{y}"
            )


@pytest.mark.parametrize("name", SHARED)
def test_shared_slide_levels_are_the_stored_pixels(slides_dir: Path, name: str) -> None:
    with open_slide(slides_dir / name) as slide:
        assert_levels_exact(slide, stored_levels(slides_dir / name))


@pytest.mark.parametrize("name", SHARED)
def test_level0_colour_as_openslide(slides_dir: Path, name: str) -> None:
    # OpenSlide reads level 0 without resampling, so its pixels there check the colour handling
    with open_slide(slides_dir / name) as ours, open_slide(slides_dir / name, backend="openslide") as theirs:
        assert ours.backend == "tifffile" and theirs.backend == "openslide"
        size = ours.dimensions
        np.testing.assert_array_equal(ours.read_region((0, 0), 0, size), theirs.read_region((0, 0), 0, size))


@pytest.mark.parametrize("name", SHARED)
def test_metadata_is_the_same_on_both_backends(slides_dir: Path, name: str) -> None:
    with open_slide(slides_dir / name) as ours, open_slide(slides_dir / name, backend="openslide") as theirs:
        assert ours.metadata() == theirs.metadata()
        assert dict(ours.properties) == dict(theirs.properties)
        assert [ours.tile_size(i) for i in range(ours.level_count)] == [
            theirs.tile_size(i) for i in range(theirs.level_count)
        ]
        for image in theirs.associated_images:
            np.testing.assert_array_equal(ours.associated_images[image], theirs.associated_images[image])


@pytest.mark.parametrize("name", SHARED)
def test_cross_check_with_openslide_passes_on_real_slides(
    slides_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vendors not yet trusted must agree with OpenSlide on each level's first tile; real slides do
    monkeypatch.setattr(tiff_backend, "_TRUSTED_VENDORS", ())
    with open_slide(slides_dir / name, backend="tifffile") as slide:
        assert slide.backend == "tifffile"


def test_pixels_unlike_openslides_fall_back_to_openslide(
    slides_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pretend the TCGA slide's JPEG 2000 (33005, RGB) were the YCbCr variant: the converted first tiles
    # no longer match OpenSlide's, so the slide must not be read by tifffile
    monkeypatch.setattr(tiff_backend, "_APERIO_JP2K_YCBCR", 33005)
    with open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert slide.backend == "openslide"
    with pytest.raises(ScoreNetInputError, match="differ from OpenSlide's"):
        open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs", backend="tifffile")


def test_non_integer_pyramid_levels_are_exact(pyramid_tiff: Path) -> None:
    with open_slide(pyramid_tiff) as slide:
        assert slide.level_dimensions == PYRAMID
        assert slide.level_downsamples[1] == pytest.approx(1.9995, abs=1e-4)
        assert slide.mpp == pytest.approx(MPP)
        reference = stored_levels(pyramid_tiff)
        assert_levels_exact(slide, reference)
    # the bug this backend fixes: OpenSlide resamples level 1 at fractional offsets
    with open_slide(pyramid_tiff, backend="openslide") as old:
        level1 = np.asarray(slide_pyramid(old, target_chunk=512)[1])
        assert (level1 != reference[1]).any(axis=-1).mean() > 0.1


def test_read_roi_resamples_from_the_finer_level_with_area_filter(pyramid_tiff: Path) -> None:
    x, y, w, h = 1001, 777, 900, 600
    with open_slide(pyramid_tiff) as slide:
        roi = read_roi(slide, x, y, w, h, mpp=3 * MPP)  # downsample 3: resampled from level 1 (1.9995)
        stored = stored_levels(pyramid_tiff)[1]
        ds = slide.level_downsamples[1]
    left, top = round(x / ds), round(y / ds)
    crop = stored[top : top + math.ceil(h / ds), left : left + math.ceil(w / ds)]
    assert roi.image.shape == (200, 300, 3)
    np.testing.assert_array_equal(roi.image, cv2.resize(crop, (300, 200), interpolation=cv2.INTER_AREA))
    # an independent reference: the exact area average (each output pixel the mean of the input area it
    # covers, partial pixels weighted by their overlap); OpenCV's INTER_AREA is it, rounded
    exact = np.einsum(
        "Yy,yxc,Xx->YXc",
        area_weights(crop.shape[0], 200),
        crop.astype(float),
        area_weights(crop.shape[1], 300),
        optimize=True,
    )
    assert np.abs(roi.image - exact).max() <= 0.5 + 1e-3


def area_weights(size: int, out: int) -> np.ndarray:
    """(out, size) matrix: row i averages the input interval [i, i + 1) * size / out by overlap."""
    edges = np.arange(out + 1) * size / out
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(pixels + 1, ends) - np.maximum(pixels, starts), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def test_parallel_read_at_non_integer_downsample_equals_one_read(slides_dir: Path) -> None:
    with open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        location, size = (round(301 * slide.level_downsamples[1]), 7), (1500, 1400)
        banded = read_region_parallel(slide, location, 1, size, min_pixels=1)
        np.testing.assert_array_equal(banded, slide.read_region(location, 1, size))
        assert np.array_equal(banded, stored_levels(slide.path)[1][3:1403, 301:1801])


def test_missing_codec_falls_back_to_openslide_with_one_warning(
    slides_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        tiff_backend, "decoder_problem", lambda code: "JPEG requires the 'imagecodecs' package"
    )
    monkeypatch.setattr(slide_module, "_codec_warned", set())
    with caplog.at_level(logging.WARNING, logger="scorenet.slide"):
        for _ in range(2):
            with open_slide(slides_dir / "cmu_small_region.svs") as slide:
                assert slide.backend == "openslide"
                assert slide.read_region((0, 0), 0, (8, 8)).shape == (8, 8, 3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "JPEG (7)" in warnings[0] and "imagecodecs" in warnings[0]
    with pytest.raises(ScoreNetInputError, match="imagecodecs"):
        open_slide(slides_dir / "cmu_small_region.svs", backend="tifffile")


def test_backend_choice(slides_dir: Path) -> None:
    path = slides_dir / "boxes.tiff"
    with open_slide(path, backend="openslide") as slide:
        assert type(slide) is Slide and slide.backend == "openslide"
    with open_slide(path, backend="tifffile") as slide:
        assert slide.backend == "tifffile"
    with pytest.raises(ScoreNetInputError, match="unknown backend"):
        open_slide(path, backend="pillow")


def test_unsupported_compression_names_file_and_codec(pyramid_tiff: Path, tmp_path: Path) -> None:
    path = tmp_path / "odd-codec.tif"
    shutil.copy(pyramid_tiff, path)
    with tifffile.TiffFile(path, mode="r+") as tif:
        for page in tif.pages:
            page.tags["Compression"].overwrite(60000)
    with pytest.raises(ScoreNetInputError, match="unsupported compression: unknown compression 60000") as err:
        open_slide(path)
    assert str(path) in str(err.value)


def test_truncated_file_is_refused_when_opened(pyramid_tiff: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    data = pyramid_tiff.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ScoreNetInputError, match="truncated") as err:
        open_slide(path)
    assert str(path) in str(err.value)


def test_corrupt_tile_is_a_clear_error_when_read(pyramid_tiff: Path, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.tif"
    shutil.copy(pyramid_tiff, path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset = page.dataoffsets[1]  # tile (0, 1) of level 0
    with open(path, "r+b") as f:
        f.seek(offset + 20)
        f.write(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes())
    with open_slide(path) as slide:
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (256, 256)), stored_levels(pyramid_tiff)[0][:256, :256]
        )
        with pytest.raises(ScoreNetInputError, match="level 0.*corrupt") as err:
            slide.read_region((300, 0), 0, (10, 10))
    assert str(path) in str(err.value)


def test_huge_single_level_tiff_opens_lazily(tmp_path: Path) -> None:
    path = tmp_path / "huge.tif"
    side, tile = 60000, 256
    count = math.ceil(side / tile) ** 2

    def tiles():  # one stored tile; tifffile leaves the other 55,000 out of the file
        yield np.full((tile, tile, 3), 200, dtype=np.uint8)
        yield from (None for _ in range(count - 1))

    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile), compression="jpeg")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with open_slide(path) as slide:
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            assert slide.backend == "tifffile" and slide.dimensions == (side, side)
            region = slide.read_region((200, 200), 0, (100, 100))
    finally:
        tracemalloc.stop()
    assert seconds < 10 and peak < 200 * 2**20  # 3.6 gigapixels: 10.8 GB if it were decoded whole
    assert np.abs(region[:56, :56].astype(int) - 200).max() <= 2  # JPEG round trip of the stored tile
    assert (region[56:, 56:] == 255).all()  # tiles the file leaves out are white, as OpenSlide shows them


def test_ycbcr_to_rgb_inverts_the_jpeg_transform() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    y_cr_cb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)  # OpenCV's full-range JPEG matrix
    back = ycbcr_to_rgb(y_cr_cb[..., [0, 2, 1]])
    assert np.abs(back.astype(int) - rgb).max() <= 3


# ---- OME-TIFF: levels in SubIFDs (bfconvert, tifffile, QuPath) or in reduced pages (libvips) ----------

LABEL = np.random.default_rng(2).integers(0, 256, (120, 300, 3), dtype=np.uint8)


def write_ome(path: Path, levels: list[np.ndarray], *, label: np.ndarray | None = None, **pixels_xml) -> Path:
    """An OME-TIFF whose coarser levels are SubIFDs of level 0, JPEG-tiled; ``pixels_xml``: OME attributes."""
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(
            levels[0],
            subifds=len(levels) - 1,
            tile=(256, 256),
            compression="jpeg",
            photometric="rgb",
            metadata={"axes": "YXS", "Name": "slide", **pixels_xml},
        )
        for pixels in levels[1:]:
            writer.write(pixels, subfiletype=1, tile=(256, 256), compression="jpeg", photometric="rgb")
        if label is not None:
            writer.write(label, photometric="rgb", metadata={"axes": "YXS", "Name": "label"})
    return path


def add_objectives(path: Path, used: str) -> None:
    """Two objectives in the OME-XML, the image referring to the second (magnification ``used``)."""
    with tifffile.TiffFile(path, mode="r+") as tif:
        xml = tif.pages[0].description
        instrument = (
            '<Instrument ID="Instrument:0"><Objective ID="Objective:0:0" NominalMagnification="10"/>'
            f'<Objective ID="Objective:0:1" NominalMagnification="{used}"/></Instrument>'
        )
        refs = '<InstrumentRef ID="Instrument:0"/><ObjectiveSettings ID="Objective:0:1"/>'
        start = xml.index('<Image ID="Image:0"')
        end = xml.index(">", start) + 1
        xml = xml[:start] + instrument + xml[start:end] + refs + xml[end:]
        tif.pages[0].tags["ImageDescription"].overwrite(xml)


@pytest.fixture(scope="module")
def ome_pyramid(tmp_path_factory: pytest.TempPathFactory, pyramid_pixels: list[np.ndarray]) -> Path:
    """The TCGA pyramid (4443 x 3567 / 2222 x 1784 / 1111 x 892) as OME-TIFF: SubIFDs, 250 nm pixels, 40x."""
    path = tmp_path_factory.mktemp("ome") / "slide.ome.tif"
    sizes = {"PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 0.26}
    write_ome(path, pyramid_pixels, label=LABEL, **sizes)
    add_objectives(path, "40")
    return path


def test_ome_subifd_pyramid_levels_are_the_stored_pixels(ome_pyramid: Path) -> None:
    reference = stored_levels(ome_pyramid)  # tifffile decodes each SubIFD level on its own
    assert [level.shape[1::-1] for level in reference] == list(PYRAMID)
    with open_slide(ome_pyramid) as slide:
        assert slide.level_dimensions == PYRAMID
        assert [slide.tile_size(i) for i in range(3)] == [(256, 256)] * 3
        assert_levels_exact(slide, reference)  # the dask pyramid chunk by chunk and read_region
        downsample = slide.level_downsamples[1]
        location, size = (round(301 * downsample), round(3 * downsample)), (1500, 1400)
        banded = read_region_parallel(slide, location, 1, size, min_pixels=1)  # bands on two threads
        np.testing.assert_array_equal(banded, reference[1][3:1403, 301:1801])


def test_ome_metadata_from_the_ome_xml(ome_pyramid: Path, pyramid_tiff: Path) -> None:
    with open_slide(ome_pyramid) as slide, open_slide(pyramid_tiff, backend="openslide") as same_sizes:
        assert slide.vendor == "ome-tiff" and slide.backend == "tifffile"
        assert slide.mpp == pytest.approx(0.25, rel=1e-12)  # 250 nm
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.26, rel=1e-12)  # µm default
        assert slide.objective_power == 40  # the objective the image refers to, not the first one
        # OpenSlide's downsamples for the same level sizes: the mean of the two axes' ratios
        assert slide.level_downsamples == same_sizes.level_downsamples
        assert slide.level_downsamples[1] == (4443 / 2222 + 3567 / 1784) / 2
        assert list(slide.associated_images) == ["label"]
        np.testing.assert_array_equal(slide.associated_images["label"], LABEL)
        props = slide.properties
        assert props["openslide.level-count"] == "3" and props["openslide.level[2].width"] == "1111"
        assert props["tiff.ImageDescription"].rstrip().endswith("</OME>")
        meta = slide.metadata()
        assert meta["level_dimensions"] == [list(d) for d in PYRAMID]
        assert meta["associated_images"] == ["label"]


@pytest.mark.parametrize(
    ("size", "unit", "mpp"),
    [
        (0.5, None, 0.5),  # OME's default unit is µm
        (0.5, "\u00b5m", 0.5),
        (0.5, "\u03bcm", 0.5),  # Greek mu, as some writers spell it
        (500, "nm", 0.5),
        (5e-4, "mm", 0.5),
        (5e-5, "cm", 0.5),
        (0.5, "pixel", None),  # not a length: no µm/px rather than a wrong one
    ],
)
def test_ome_pixel_size_units(tmp_path: Path, size: float, unit: str | None, mpp: float | None) -> None:
    levels = [np.full((300, 400, 3), 180, np.uint8), np.full((150, 200, 3), 180, np.uint8)]
    unit_xml = {"PhysicalSizeXUnit": unit} if unit else {}
    path = write_ome(tmp_path / "units.ome.tiff", levels, PhysicalSizeX=size, PhysicalSizeY=size, **unit_xml)
    with open_slide(path) as slide:
        assert slide.level_count == 2 and slide.objective_power is None
        assert slide.mpp == (pytest.approx(mpp, rel=1e-12) if mpp else None)


def test_ome_pyramid_in_reduced_pages_is_read_too(tmp_path: Path, pyramid_pixels: list[np.ndarray]) -> None:
    # libvips' layout: the OME-XML describes page 0 only; the reduced pages after it are the pyramid
    path = tmp_path / "pages.tif"  # not named .ome: the OME-XML alone makes it OME-TIFF
    xml = tifffile.OmeXml()
    xml.addimage(np.uint8, pyramid_pixels[0].shape, (1, 1, 1, *pyramid_pixels[0].shape), axes="YXS")
    with tifffile.TiffWriter(path) as writer:
        for level, pixels in enumerate(pyramid_pixels):
            writer.write(
                pixels,
                tile=(256, 256),
                compression="jpeg",
                photometric="rgb",
                subfiletype=int(level > 0),
                description=xml.tostring() if level == 0 else None,
                metadata=None,
            )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series[0].levels) == 1
        reference = [tifffile.imread(path, key=page) for page in range(len(tif.pages))]
    with open_slide(path) as slide:
        assert slide.vendor == "ome-tiff" and slide.level_dimensions == PYRAMID
        assert_levels_exact(slide, reference)


def test_ome_with_openslide_backend_is_its_first_page(ome_pyramid: Path) -> None:
    # OpenSlide sees the top-level pages only (a generic TIFF); no SubIFD levels, no OME pixel size
    with open_slide(ome_pyramid, backend="openslide") as theirs, open_slide(ome_pyramid) as ours:
        assert theirs.backend == "openslide" and theirs.level_dimensions == PYRAMID[:1] and theirs.mpp is None
        size = theirs.dimensions
        # level 0, which OpenSlide reads without resampling: the same colours as tifffile's
        np.testing.assert_array_equal(theirs.read_region((0, 0), 0, size), ours.read_region((0, 0), 0, size))


@pytest.mark.parametrize(
    ("planes", "axes", "message"),
    [
        (np.zeros((4, 300, 400), np.uint16), "CYX", "4 channels of uint16"),  # fluorescence
        (np.zeros((2, 300, 400, 3), np.uint8), "TYXS", "2 time points of uint8"),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "openslide"])
def test_ome_of_several_planes_is_refused(
    tmp_path: Path, planes: np.ndarray, axes: str, message: str, backend: str
) -> None:
    path = tmp_path / "planes.ome.tif"
    photometric = "rgb" if axes.endswith("S") else "minisblack"
    tifffile.imwrite(path, planes, tile=(128, 128), photometric=photometric, metadata={"axes": axes})
    with pytest.raises(ScoreNetInputError, match=f"{message}.*8-bit RGB") as err:
        open_slide(path, backend=backend)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_ome_single_grey_16bit_plane_opens_as_plain_image(tmp_path: Path) -> None:
    path = tmp_path / "grey.ome.tif"
    grey = np.arange(300 * 400, dtype=np.uint16).reshape(300, 400)
    tifffile.imwrite(path, grey, tile=(128, 128), photometric="minisblack", metadata={"PhysicalSizeX": 0.5})
    with open_slide(path) as slide:
        assert slide.backend == "image" and slide.vendor == "image"
        assert any("greyscale" in note for note in slide.notes)
        expected = np.floor(grey / 257 + 0.5).astype(np.uint8)  # plain_image's 16-bit rule
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (400, 300))[..., 0], expected)


def test_ome_missing_codec_falls_back_to_openslide_or_is_refused(
    ome_pyramid: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    problem = "JPEG requires the 'imagecodecs' package"
    monkeypatch.setattr(tiff_backend, "decoder_problem", lambda code: problem)
    with caplog.at_level(logging.WARNING, logger="scorenet.ome_tiff"), open_slide(ome_pyramid) as slide:
        assert slide.backend == "openslide" and slide.level_count == 1
    assert any("imagecodecs" in r.getMessage() and "first page" in r.getMessage() for r in caplog.records)
    with pytest.raises(ScoreNetInputError, match="OME-TIFF.*imagecodecs") as err:
        open_slide(ome_pyramid, backend="tifffile")
    assert str(ome_pyramid) in str(err.value)


def test_ome_subifd_tiles_past_the_end_are_refused_when_opened(ome_pyramid: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.ome.tif"
    shutil.copy(ome_pyramid, path)
    size = path.stat().st_size
    with tifffile.TiffFile(path, mode="r+") as tif:
        level = tif.series[0].levels[2].keyframe  # a SubIFD: OpenSlide and a top-level check never see it
        offsets = list(level.dataoffsets)
        offsets[-1] = size + 1000
        level.tags["TileOffsets"].overwrite(offsets)
    with pytest.raises(ScoreNetInputError, match="truncated") as err:
        open_slide(path)
    assert str(path) in str(err.value)


def test_decoded_tiles_are_cached_across_handles_and_dropped_least_recent_first(
    pyramid_tiff: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scorenet import tiff_backend

    cache = tiff_backend.TileCache(max_bytes=10 * 256 * 256 * 3)  # ten 256 x 256 tiles
    monkeypatch.setattr(tiff_backend, "TILE_CACHE", cache)
    decoded: list[tuple[int, int]] = []
    real = tiff_backend._Level.segment
    monkeypatch.setattr(
        tiff_backend._Level, "segment", lambda self, r, c: (decoded.append((r, c)), real(self, r, c))[1]
    )
    with open_slide(pyramid_tiff) as slide:
        decoded.clear()  # opening probes one tile of the coarsest level
        first = slide.read_region((0, 0), 0, (512, 512))
    assert len(decoded) == 4
    with open_slide(pyramid_tiff) as slide:  # a fresh handle, as the Score RoI widget opens one per click
        decoded.clear()
        again = slide.read_region((0, 0), 0, (512, 512))
        assert decoded == [] and np.array_equal(first, again)
        slide.read_region((0, 512), 0, (1024, 512))  # 8 more tiles: the 10-tile budget drops the oldest
        assert len(decoded) == 8
        slide.read_region((0, 0), 0, (256, 256))  # tile (0, 0) was the least recently used
        assert decoded[-1] == (0, 0) and len(decoded) == 9
    # a file rewritten at the same path is not served from the cache
    copy = tmp_path / "copy.tif"
    copy.write_bytes(pyramid_tiff.read_bytes())
    with open_slide(copy) as slide:
        slide.read_region((0, 0), 0, (256, 256))
    with tifffile.TiffWriter(copy) as writer:
        writer.write(np.zeros((512, 512, 3), np.uint8), tile=(256, 256), photometric="rgb")
    with open_slide(copy) as slide:
        assert slide.read_region((0, 0), 0, (256, 256)).max() == 0
