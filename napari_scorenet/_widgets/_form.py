"""The companion widgets' common layout: labelled rows, a row of buttons, then what shows progress."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qtpy.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLayout, QVBoxLayout, QWidget
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


def resume_checkbox() -> QCheckBox:
    """The Resume option of a training widget (the library's ``resume``)."""
    box = QCheckBox("continue the run saved in the output folder")
    box.setToolTip(
        "after Cancel or a crash: go on from the last finished epoch with the same options; "
        "off: start afresh, replacing the saved run"
    )
    return box


def resume_after_run(box: QCheckBox, stopped: bool, saved_epochs: int, button: str) -> str:
    """Tick Resume after a run stopped with epochs saved (``button`` again most likely means: go on),
    untick it after a run that finished (nothing left to continue); what to add to the status line."""
    if stopped and saved_epochs:
        box.setChecked(True)
        return f"; Resume is ticked: {button} continues it"
    if not stopped:
        box.setChecked(False)
    return ""


def saved_run_warning(state_file: Path, resume: bool) -> str | None:
    """What to tell the user before a run writes into ``state_file``'s folder, or None."""
    if resume and not state_file.is_file():
        return f"{state_file.parent} holds no saved run to resume; starting afresh"
    if not resume and state_file.is_file():
        return (
            f"{state_file.parent} holds an earlier run; starting afresh replaces it as epochs finish "
            "(tick Resume to continue it)"
        )
    return None
