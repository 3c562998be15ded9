"""The five widgets dock from the plugin manifest under their display names."""

from __future__ import annotations

import pytest

from napari_scorenet._widgets.evaluate import EvaluateWidget
from napari_scorenet._widgets.finetune import FinetuneWidget
from napari_scorenet._widgets.pretrain import PretrainWidget
from napari_scorenet._widgets.score_roi import ScoreRoIWidget
from napari_scorenet._widgets.scoremix_preview import ScoreMixPreviewWidget


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("Score RoI", ScoreRoIWidget),
        ("ScoreMix preview", ScoreMixPreviewWidget),
        ("Finetune", FinetuneWidget),
        ("Evaluate", EvaluateWidget),
        ("Pretrain", PretrainWidget),
    ],
)
def test_docks_from_manifest(make_napari_viewer, name, cls):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-scorenet", name)
    assert isinstance(widget, cls)
    viewer.add_shapes(name="drawn")  # napari hands the widget a proxy of this same viewer
    assert [ly.name for ly in widget.viewer.layers] == ["drawn"]
