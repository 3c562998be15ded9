"""The companion widgets' common layout: labelled rows, a row of buttons, then what shows progress."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLayout, QVBoxLayout, QWidget
from scorenet.choices import Device, values

DEVICES = values(Device)  # what scorenet.inference.resolve_device accepts by name


def stack_form(
    widget: QWidget,
    rows: Sequence[tuple[str, QWidget]],
    buttons: Sequence[QWidget],
    below: Sequence[QWidget | QLayout] = (),
) -> QVBoxLayout:
    """Lay ``widget`` out as a form of ``rows``, a row of ``buttons``, then ``below`` top to bottom."""
    form = QFormLayout()
    for name, field in rows:
        form.addRow(name, field)
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    layout = QVBoxLayout(widget)
    layout.addLayout(form)
    layout.addLayout(row)
    for item in below:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return layout
