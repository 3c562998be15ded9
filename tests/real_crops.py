"""Corners of non-overlapping crops of the real tiles, for tests that need a few distinct tissues."""

from __future__ import annotations

# (tile, top, left): three carcinoma, then three stroma; crops of up to 384 x 512 stay inside the tiles
CROP_CORNERS = [
    ("hgsc_nest.jpg", 100, 100),
    ("hgsc_nest.jpg", 600, 900),
    ("target_image.png", 300, 200),
    ("hgsc_stromal_he.jpg", 100, 100),
    ("hgsc_stromal_he.jpg", 600, 900),
    ("hgsc_stromal_he.jpg", 1000, 300),
]
