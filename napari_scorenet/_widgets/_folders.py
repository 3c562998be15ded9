"""A line edit with a folder/file browse button, and folder checks that notify instead of raising."""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget
from scorenet.errors import ScoreNetInputError


class PathPicker(QWidget):
    """Path text plus a browse button (folder, or file with a name filter)."""

    def __init__(self, text: str = "", *, folder: bool = True, name_filter: str = "") -> None:
        super().__init__()
        self.edit = QLineEdit(text)
        self.folder, self.name_filter = folder, name_filter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit)
        layout.addWidget(QPushButton("…", clicked=self._browse))

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, "Folder", self.edit.text())
        else:
            path, _ = QFileDialog.getOpenFileName(self, "File", self.edit.text(), self.name_filter)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        self.edit.setText(str(text))


def readable_folder(text: str, what: str) -> Path:
    """The folder ``text``; ScoreNetInputError naming it when it is missing or unreadable."""
    path = Path(text).expanduser()
    if not text or not path.is_dir():
        raise ScoreNetInputError(f"{path}: {what} folder not found")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ScoreNetInputError(f"{path}: {what} folder is not readable")
    return path
