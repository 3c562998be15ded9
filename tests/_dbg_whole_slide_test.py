import sys, traceback; sys.path.insert(0, "/work/main/tests")
from test_widget_whole_slide import _widget, _score, checkpoint, notes  # noqa
def test_dbg(make_napari_viewer, qtbot, slides_dir, checkpoint, notes):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    depth = [0]
    orig = widget._on_slide_progress
    def h(e):
        depth[0] += 1
        if depth[0] == 2: traceback.print_stack(limit=25)
        try: orig(e)
        finally: depth[0] -= 1
    widget._on_slide_progress = h
    _score(qtbot, widget)
