"""Options shared by several ``scorenet`` sub-commands, in a module each of them can import."""

from __future__ import annotations

import argparse

from .choices import DEVICE_HELP, Device


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {text}")
    return value


def add_device(p: argparse.ArgumentParser, default: str = Device.AUTO.value) -> None:
    """``--device``, validated later by ``scorenet.inference.resolve_device``."""
    p.add_argument("--device", default=default, help=f"{DEVICE_HELP} (default: %(default)s)")


def add_resolution(p: argparse.ArgumentParser, mpp_note: str = "") -> None:
    """``--mpp`` or ``--magnification``, resolved by ``scorenet.resolution.resolve_resolution``."""
    resolution = p.add_mutually_exclusive_group()
    resolution.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="read at this um/px (default: the checkpoint's when the slide records its pixel size, "
        "else level 0)" + mpp_note,
    )
    resolution.add_argument(
        "--magnification", type=float, default=None, help="read at this objective magnification, e.g. 10"
    )
