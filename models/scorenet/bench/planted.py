"""A seeded learning task from real pixels: carcinoma patches planted into real stroma at known places.

Backgrounds are crops of real stroma (``tiles/hgsc_stromal_he.jpg``) and, when ``scorenet.slide`` is
available, tissue regions of the shared slides. Patches are crops of real carcinoma: tumour-dense
windows of ``tiles/hgsc_nest.jpg`` (chosen with its nucleus-type mask) and tissue windows of
``tiles/target_image.png``. Patches are pasted unchanged (no blending, no resampling), never overlap and
keep a gap between them, so the planted mask is exactly the union of the paste boxes.

Two tasks (``PlantedConfig.task``):

- ``"kind"`` (default), classes by *which* carcinoma is planted, as in subtyping (BRACS) or tumour
  detection (CAMELYON16): ``0 stroma`` (nothing planted), ``1 serous_carcinoma`` (patches of
  ``hgsc_nest.jpg``), ``2 other_carcinoma`` (patches of ``target_image.png``). Both carcinoma classes
  draw 1 to 4 patches with sides in ``kind_side`` from the same distribution, so the amount of carcinoma
  says nothing about the class: the evidence is in the carcinoma pixels, and every region of carcinoma
  selected can only help. Sides of at least one region (128 px) guarantee that every patch covers at
  least a quarter of some region, the share that makes a region count as planted in the benchmark.
- ``"amount"``, classes by *how much* of the same carcinoma mix is planted: ``0 stroma``,
  ``1 few_small`` (1 or 2 patches with sides in ``small_side``), ``2 many_or_large`` (4 to 6 with sides
  in ``medium_side``, or 2 in ``large_side``). Kept to reproduce earlier figures; it teaches a
  region-selecting model to look *away* from the carcinoma (docs/benchmarks.md, "Why the scorer looked
  away"): for ``few_small`` images, selecting less carcinoma makes them look less like
  ``many_or_large``, so two classes out of three reward avoiding it.

Images are 768 x 1024 (BACH's 3:4 aspect, half its side), a 6 x 8 region grid at ScoreNet's 128-pixel
regions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_path, atomic_write
from ..errors import ScoreNetInputError
from ..paths import data_dir

TASK_CLASSES = {
    "kind": ("stroma", "serous_carcinoma", "other_carcinoma"),
    "amount": ("stroma", "few_small", "many_or_large"),
}
CLASS_NAMES = TASK_CLASSES["kind"]
# the carcinoma source of each class of the "kind" task
KIND_SOURCES = {1: "hgsc_nest.jpg", 2: "target_image.png"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PlantedConfig:
    """Sizes of the task; sides are inclusive (min, max) pixel ranges of square patches."""

    task: str = "kind"
    height: int = 768
    width: int = 1024
    kind_side: tuple[int, int] = (128, 256)
    kind_count: tuple[int, int] = (1, 4)
    small_side: tuple[int, int] = (96, 160)
    medium_side: tuple[int, int] = (128, 192)
    large_side: tuple[int, int] = (224, 288)
    gap: int = 16  # minimum distance between patches, so each patch is its own connected component
    use_slides: bool = True  # also take backgrounds from the shared slides when scorenet.slide exists

    @property
    def class_names(self) -> tuple[str, ...]:
        """The task's class names, index = label."""
        return TASK_CLASSES[self.task]

    def __post_init__(self) -> None:
        if self.task not in TASK_CLASSES:
            raise ValueError(f"unknown planted task {self.task!r}; choose one of {', '.join(TASK_CLASSES)}")

    def max_area(self, label: int) -> int:
        """Largest planted area a sample of ``label`` can have."""
        if self.task == "kind":
            return 0 if label == 0 else self.kind_count[1] * self.kind_side[1] ** 2
        many, large = 6 * self.medium_side[1] ** 2, 2 * self.large_side[1] ** 2
        return [0, 2 * self.small_side[1] ** 2, max(many, large)][label]

    def min_area(self, label: int) -> int:
        """Smallest planted area a sample of ``label`` can have."""
        if self.task == "kind":
            return 0 if label == 0 else self.kind_count[0] * self.kind_side[0] ** 2
        many, large = 4 * self.medium_side[0] ** 2, 2 * self.large_side[0] ** 2
        return [0, self.small_side[0] ** 2, min(many, large)][label]


@dataclass(frozen=True)
class PlantedPatch:
    """One pasted patch: where it came from and where it went, boxes ``(x0, y0, x1, y1)`` in pixels."""

    source: str
    source_box: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


@dataclass
class PlantedSample:
    """An image (H, W, 3) uint8, its class, the planted pixel mask (H, W) bool and the patches."""

    image: np.ndarray
    label: int
    mask: np.ndarray
    background: str
    patches: list[PlantedPatch] = field(default_factory=list)


@dataclass
class _Sources:
    backgrounds: dict[str, np.ndarray]  # name -> RGB image at least (H, W)
    carcinoma: dict[str, np.ndarray]  # name -> RGB image
    carcinoma_ok: dict[str, np.ndarray]  # name -> (h, w) bool: top-left corners allowed, per side below
    ok_side: int


def _read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ScoreNetInputError("planted task source image not found (set SCORENET_DATA)", path)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _window_mean(values: np.ndarray, side: int) -> np.ndarray:
    """Mean of ``values`` over every side x side window, indexed by the window's top-left corner."""
    integral = np.pad(values.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s = side
    total = integral[s:, s:] - integral[:-s, s:] - integral[s:, :-s] + integral[:-s, :-s]
    return total / s**2


def _tumour_dense_corners(type_mask: np.ndarray, side: int) -> np.ndarray:
    """Top-left corners whose side x side window is among the 25 % densest in carcinoma nuclei.

    The tumour-nest tile's mask labels nucleus types 1..3 without names; in a tumour nest the tumour
    nuclei dominate, so the most frequent type is taken as carcinoma.
    """
    types, counts = np.unique(type_mask[type_mask > 0], return_counts=True)
    density = _window_mean(type_mask == types[np.argmax(counts)], side)
    return density >= np.quantile(density, 0.75)


def _tissue_corners(image: np.ndarray, side: int) -> np.ndarray:
    """Top-left corners whose window is mostly tissue (not white glass)."""
    tissue = image.astype(np.int16).min(axis=2) < 200
    return _window_mean(tissue, side) >= 0.9


# Normal skin (OpenSlide's CMU-1 small region). The TCGA frozen section is left out: it is a carcinoma
# case, so its tissue could carry tumour into images labelled "stroma".
_SLIDE_BACKGROUNDS = {"cmu_small_region.svs": "tissue-mask-cmu-1-small-region.npy"}


def _slide_backgrounds(root: Path, config: PlantedConfig) -> dict[str, np.ndarray]:
    """The most tissue-rich H x W region of each background slide, read with ``scorenet.slide``."""
    try:
        from ..slide import open_slide, read_roi
    except ImportError:  # the slide reader is optional for this task
        return {}
    found = {}
    for name, mask_name in _SLIDE_BACKGROUNDS.items():
        slide_path, mask_path = root / "slides" / name, root / "slides" / mask_name
        if not (slide_path.is_file() and mask_path.is_file()):
            continue
        with open_slide(slide_path) as slide:
            width, height = slide.level_dimensions[0]
        tissue = np.load(mask_path, allow_pickle=False)
        step = height / tissue.shape[0]  # level-0 pixels per mask pixel
        win_h, win_w = int(np.ceil(config.height / step)), int(np.ceil(config.width / step))
        if win_h > tissue.shape[0] or win_w > tissue.shape[1]:
            continue
        fraction = np.lib.stride_tricks.sliding_window_view(tissue, (win_h, win_w)).mean(axis=(2, 3))
        y, x = np.unravel_index(np.argmax(fraction), fraction.shape)
        x0 = min(int(x * step), width - config.width)
        y0 = min(int(y * step), height - config.height)
        if fraction[y, x] >= 0.9 and x0 >= 0 and y0 >= 0:
            found[name] = read_roi(slide_path, x0, y0, config.width, config.height).image
    return found


@lru_cache(maxsize=4)
def load_sources(root: str | None = None, config: PlantedConfig = PlantedConfig()) -> _Sources:
    """Read the real source images once (cached per data folder and config)."""
    root_path = Path(root) if root else data_dir()
    tiles = root_path / "tiles"
    nest = _read_rgb(tiles / "hgsc_nest.jpg")
    target = _read_rgb(tiles / "target_image.png")
    mask_path = tiles / "hgsc_nest_type_mask.npz"
    if not mask_path.is_file():
        raise ScoreNetInputError("nucleus-type mask not found (set SCORENET_DATA)", mask_path)
    with np.load(mask_path, allow_pickle=False) as npz:
        type_mask = npz["nuc_raster"]
    # corners are checked for the largest side; smaller patches at those corners are inside the window
    ok_side = config.large_side[1]
    backgrounds = {"hgsc_stromal_he.jpg": _read_rgb(tiles / "hgsc_stromal_he.jpg")}
    if config.use_slides:
        backgrounds.update(_slide_backgrounds(root_path, config))
    for name, image in backgrounds.items():
        image.setflags(write=False)  # shared by every sample drawn from the cache
        if image.shape[0] < config.height or image.shape[1] < config.width:
            raise ScoreNetInputError(f"background smaller than {config.height} x {config.width}", name)
    return _Sources(
        backgrounds=backgrounds,
        carcinoma={"hgsc_nest.jpg": nest, "target_image.png": target},
        carcinoma_ok={
            "hgsc_nest.jpg": _tumour_dense_corners(type_mask, ok_side),
            "target_image.png": _tissue_corners(target, ok_side),
        },
        ok_side=ok_side,
    )


def _patch_sides(rng: np.random.Generator, label: int, config: PlantedConfig) -> list[int]:
    if label == 0:
        return []
    if config.task == "kind":
        (low, high), count = config.kind_side, rng.integers(config.kind_count[0], config.kind_count[1] + 1)
    elif label == 1:
        (low, high), count = config.small_side, rng.integers(1, 3)
    elif rng.random() < 0.5:
        (low, high), count = config.medium_side, rng.integers(4, 7)
    else:
        (low, high), count = config.large_side, 2
    return [int(side) for side in rng.integers(low, high + 1, size=count)]


Box = tuple[int, int, int, int]


def _place(rng: np.random.Generator, sides: list[int], config: PlantedConfig) -> list[Box]:
    """Non-overlapping boxes (with ``gap`` between them) for squares of the given sides."""
    for _ in range(100):
        boxes: list[Box] = []
        for side in sides:
            for _ in range(200):
                x0 = int(rng.integers(0, config.width - side + 1))
                y0 = int(rng.integers(0, config.height - side + 1))
                box = (x0, y0, x0 + side, y0 + side)
                g = config.gap
                if all(
                    box[0] >= b[2] + g or b[0] >= box[2] + g or box[1] >= b[3] + g or b[1] >= box[3] + g
                    for b in boxes
                ):
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == len(sides):
            return boxes
    raise RuntimeError(f"could not place patches of sides {sides} in {config.height} x {config.width}")


def make_sample(
    rng: np.random.Generator, label: int, sources: _Sources, config: PlantedConfig
) -> PlantedSample:
    """One image of class ``label`` drawn with ``rng``."""
    names = sorted(sources.backgrounds)
    background = names[int(rng.integers(len(names)))]
    full = sources.backgrounds[background]
    y0 = int(rng.integers(0, full.shape[0] - config.height + 1))
    x0 = int(rng.integers(0, full.shape[1] - config.width + 1))
    image = full[y0 : y0 + config.height, x0 : x0 + config.width]
    # flips give more backgrounds from few real ones and keep the 3:4 aspect
    if rng.random() < 0.5:
        image = image[::-1]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = image.copy()  # patches are pasted in place: never into the cached background
    mask = np.zeros(image.shape[:2], dtype=bool)
    patches = []
    carcinoma_names = sorted(sources.carcinoma)
    for box in _place(rng, _patch_sides(rng, label, config), config):
        name = carcinoma_names[int(rng.integers(len(carcinoma_names)))]
        if config.task == "kind":
            name = KIND_SOURCES[label]
        corners = np.argwhere(sources.carcinoma_ok[name])
        cy, cx = (int(v) for v in corners[int(rng.integers(len(corners)))])
        side = box[2] - box[0]
        source_box = (cx, cy, cx + side, cy + side)
        image[box[1] : box[3], box[0] : box[2]] = sources.carcinoma[name][cy : cy + side, cx : cx + side]
        mask[box[1] : box[3], box[0] : box[2]] = True
        patches.append(PlantedPatch(name, source_box, box))
    return PlantedSample(image=image, label=label, mask=mask, background=background, patches=patches)


def generate(
    n: int, seed: int = 0, config: PlantedConfig | None = None, root: str | Path | None = None
) -> list[PlantedSample]:
    """``n`` samples with balanced classes in a seeded random order; same seed, same samples."""
    config = config or PlantedConfig()
    sources = load_sources(str(root) if root else None, config)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    return [make_sample(rng, int(label), sources, config) for label in labels]


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def write_image_folder(
    out_dir: str | Path,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    config: PlantedConfig | None = None,
    root: str | Path | None = None,
) -> Path:
    """Write ``out_dir/<split>/<class>/<split>_<i>.png``, masks under ``out_dir/masks/<split>/`` and
    ``out_dir/planted.json`` (config, seed, per-image label, background and patch boxes).

    ``counts`` maps split -> number of images (default 60 / 30 / 30); each split has its own seed.
    """
    out = Path(out_dir)
    counts = counts or {"train": 60, "val": 30, "test": 30}
    config = config or PlantedConfig()
    records: dict[str, list[dict]] = {}
    for index, (split, n) in enumerate(counts.items()):
        records[split] = []
        for i, sample in enumerate(generate(n, seed * 1000 + index, config, root)):
            name = f"{split}_{i:05d}.png"
            image_path = out / split / config.class_names[sample.label] / name
            _write_png(image_path, sample.image)
            _write_png(out / "masks" / split / name, sample.mask.astype(np.uint8) * 255)
            records[split].append(
                {
                    "image": str(image_path.relative_to(out)),
                    "mask": f"masks/{split}/{name}",
                    "label": sample.label,
                    "background": sample.background,
                    "patches": [asdict(p) for p in sample.patches],
                }
            )
    meta = {"class_names": list(config.class_names), "seed": seed, "config": asdict(config)}
    meta["images"] = records
    atomic_write(out / "planted.json", json.dumps(meta, indent=1))
    return out


def read_mask(path: str | Path) -> np.ndarray:
    """A planted mask written by :func:`write_image_folder`, as (H, W) bool."""
    with Image.open(path) as im:
        return np.asarray(im) > 0
