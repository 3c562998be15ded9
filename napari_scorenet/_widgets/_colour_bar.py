"""One colour bar per group of layers drawn on the same fixed scale.

Every scored RoI has its own distribution layer, all on one fixed scale: one bar tells the scale of
them all, where a bar per layer would put identical bars side by side, and each bar is a visual that
napari builds (and, under a software renderer, draws) again for every new RoI.
"""

from __future__ import annotations

import weakref

GROUP_KEY = "colour_bar_group"

_watched_lists: weakref.WeakSet = weakref.WeakSet()


def group_layers(viewer, group: str) -> list:
    """The viewer's layers of ``group``, in layer-list order."""
    return [ly for ly in viewer.layers if ly.metadata.get(GROUP_KEY) == group]


def refresh_colour_bar(viewer, group: str) -> None:
    """Show the bar on the first visible layer of ``group`` and hide the others' (only what changes is
    set: a bar that is never shown is never built)."""
    layers = group_layers(viewer, group)
    holder = next((ly for ly in layers if ly.visible), None)
    for layer in layers:
        if layer.colorbar.visible != (layer is holder):
            layer.colorbar.visible = layer is holder


def share_colour_bar(viewer, layer, group: str) -> None:
    """Put ``layer`` in ``group``: the group shows one colour bar, passed on when its holder is hidden
    or removed."""
    layer.metadata[GROUP_KEY] = group
    layer.events.visible.connect(lambda _event: refresh_colour_bar(viewer, group))
    if viewer.layers not in _watched_lists:
        _watched_lists.add(viewer.layers)
        viewer.layers.events.removed.connect(lambda event: _on_removed(viewer, event.value))
    refresh_colour_bar(viewer, group)


def _on_removed(viewer, layer) -> None:
    group = layer.metadata.get(GROUP_KEY)
    if group is not None:
        refresh_colour_bar(viewer, group)
