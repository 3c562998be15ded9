"""One rule from a requested resolution to a read scale, for every reader of RoIs.

``scorenet score``, the Score RoI widget, the ScoreMix preview and whole-slide scoring all call
:func:`resolve_resolution`, so they accept and refuse the same requests:

- an explicit µm/px needs a slide that records its pixel size, else it is an error;
- an explicit magnification needs the slide's objective power, else it is an error;
- with neither, the checkpoint's µm/px is used when the slide records its pixel size; a slide that
  does not is read at level 0, with a note saying so (the CLI logs it, napari shows a warning);
- a thumbnail is read at the slide's coarsest level at most, and at most ``THUMBNAIL_PIXELS``, with
  or without a pixel size.

See docs/scoring.md ("Resolution").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from typing import Protocol

from .errors import ScoreNetInputError

# a whole-slide thumbnail at most this many pixels (4096 x 4096): a few seconds of ScoreNet on a CPU
THUMBNAIL_PIXELS = 4096 * 4096


class SlideGeometry(Protocol):
    """What the rule needs of a slide (``scorenet.slide.Slide`` has it)."""

    path: str | PathLike[str]
    mpp: float | None
    objective_power: float | None
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]


@dataclass(frozen=True)
class Resolution:
    """How RoIs are read: ``scale`` input pixels per level-0 pixel; ``mpp`` of the input when known.

    ``note`` is a one-line warning when the request could not be met as asked (None otherwise).
    """

    scale: float
    mpp: float | None
    note: str | None = None

    def describe(self) -> str:
        """``0.5 µm/px``, ``level 0`` or ``0.25 x level 0``, for messages."""
        if self.mpp is not None:
            return f"{self.mpp:.4g} µm/px"
        return "level 0" if self.scale == 1.0 else f"{self.scale:.4g} x level 0"


LEVEL0 = Resolution(1.0, None)


def _positive(value: float, what: str) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ScoreNetInputError(f"{what} must be a positive number, got {value}")
    return float(value)


def resolve_resolution(
    slide: SlideGeometry,
    *,
    mpp: float | None = None,
    magnification: float | None = None,
    checkpoint_mpp: float | None = None,
    thumbnail: bool = False,
) -> Resolution:
    """The read scale for a requested µm/px or magnification (else the checkpoint's µm/px) on ``slide``.

    Raises ``ScoreNetInputError`` naming the slide for a request it cannot honour (see the module
    docstring for the rule).
    """
    if mpp is not None and magnification is not None:
        raise ScoreNetInputError("give a resolution in microns per pixel or a magnification, not both")
    if mpp is not None:
        mpp = _positive(mpp, "microns per pixel")
        if slide.mpp is None:
            power = slide.objective_power
            hint = f"a magnification (the objective is {power:g}x) or " if power else ""
            raise ScoreNetInputError(
                f"{mpp:g} µm/px requested but the slide records no pixel size; give {hint}no resolution "
                "to read level 0",
                slide.path,
            )
        scale = slide.mpp / mpp
    elif magnification is not None:
        magnification = _positive(magnification, "magnification")
        if slide.objective_power is None:
            raise ScoreNetInputError(
                f"{magnification:g}x requested but the slide records no objective power; "
                + ("give microns per pixel instead" if slide.mpp else "give no resolution to read level 0"),
                slide.path,
            )
        scale = magnification / slide.objective_power
    elif checkpoint_mpp is not None and slide.mpp is not None:
        scale = slide.mpp / _positive(checkpoint_mpp, "the checkpoint's microns per pixel")
    else:
        scale = 1.0
    if thumbnail:
        width, height = slide.level_dimensions[0]
        scale = min(scale, 1.0 / slide.level_downsamples[-1], math.sqrt(THUMBNAIL_PIXELS / (width * height)))
    resolution = Resolution(scale, slide.mpp / scale if slide.mpp is not None else None)
    if checkpoint_mpp is not None and slide.mpp is None and mpp is None and magnification is None:
        note = (
            f"{slide.path}: the slide records no pixel size; reading at {resolution.describe()}, not at "
            f"the checkpoint's {checkpoint_mpp:g} µm/px"
        )
        resolution = Resolution(scale, None, note)
    return resolution
