"""One colour bar per group of layers drawn on the same fixed scale.

Every scored RoI has its own distribution layer, all on one fixed scale: one bar tells the scale of
them all, where a bar per layer would put identical bars side by side, and each bar is a visual that
napari builds (and, under a software renderer, draws) again for every new RoI.
"""

from __future__ import annotations

import weakref

GROUP_KEY = "colour_bar_group"

# layer lists and layers whose events are connected (each once: a widget may add many RoIs)
_watched_lists: weakref.WeakSet = weakref.WeakSet()
_watched_layers: weakref.WeakSet = weakref.WeakSet()


def _unwrapped(obj):
    """The object behind napari's PublicOnlyProxy (what plugin widgets opened from the menu get)."""
    return getattr(obj, "__wrapped__", obj)


def group_layers(layers, group: str) -> list:
    """The layers of ``group`` in the layer list ``layers``, in list order."""
    return [ly for ly in layers if ly.metadata.get(GROUP_KEY) == group]


def refresh_colour_bar(layers, group: str) -> None:
    """Show the bar on the first visible layer of ``group`` and hide the others' (only what changes is
    set: a bar that is never shown is never built)."""
    members = group_layers(layers, group)
    holder = next((ly for ly in members if ly.visible), None)
    for layer in members:
        if layer.colorbar.visible != (layer is holder):
            layer.colorbar.visible = layer is holder


def _refresh_all(layers) -> None:
    for group in {ly.metadata.get(GROUP_KEY) for ly in layers} - {None}:
        refresh_colour_bar(layers, group)


def _watch_layer(layers, layer) -> None:
    if layer not in _watched_layers:
        _watched_layers.add(layer)
        ref = weakref.ref(layers)  # a removed layer must not keep the list alive

        def on_visible(_event) -> None:
            if (current := ref()) is not None and layer in current:
                refresh_colour_bar(current, layer.metadata[GROUP_KEY])

        layer.events.visible.connect(on_visible)


def _watch_list(layers) -> None:
    if layers in _watched_lists:
        return
    _watched_lists.add(layers)
    ref = weakref.ref(layers)

    def on_inserted(event) -> None:
        if (current := ref()) is not None and GROUP_KEY in event.value.metadata:
            _watch_layer(current, event.value)  # re-added, or a copy of a group layer
            _refresh_all(current)

    def on_removed(event) -> None:
        if (current := ref()) is not None and GROUP_KEY in event.value.metadata:
            event.value.colorbar.visible = False  # a removed layer holds no bar, if it comes back
            _refresh_all(current)

    def on_moved(_event) -> None:
        if (current := ref()) is not None:
            _refresh_all(current)

    layers.events.inserted.connect(on_inserted)
    layers.events.removed.connect(on_removed)
    layers.events.moved.connect(on_moved)


def share_colour_bar(viewer, layer, group: str) -> None:
    """Put ``layer`` (already in ``viewer``) in ``group``: the group shows one colour bar, on its first
    visible layer, passed on when layers are hidden, shown, moved, removed or added."""
    layers = _unwrapped(viewer.layers)
    layer = _unwrapped(layer)
    layer.metadata[GROUP_KEY] = group
    _watch_list(layers)
    _watch_layer(layers, layer)
    refresh_colour_bar(layers, group)
