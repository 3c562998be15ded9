"""Light Qt plots (matplotlib is not a dependency): a line plot, class bars and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QProgressBar, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget


class LinePlot(QWidget):
    """Series of values drawn as polylines, rescaled to the widget; the last value of each in the legend."""

    COLORS = ("#f0a030", "#30c0f0", "#a0f030")

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[str, list[float]] = {}
        self.setMinimumHeight(140)

    def append(self, name: str, value: float) -> None:
        self.series.setdefault(name, []).append(float(value))
        self.update()

    def clear(self) -> None:
        self.series.clear()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#262930"))
        w, h, pad = self.width(), self.height(), 6
        for i, (name, values) in enumerate(self.series.items()):
            color = QColor(self.COLORS[i % len(self.COLORS)])
            painter.setPen(QPen(color, 2))
            lo, hi = min(values), max(values)
            span = (hi - lo) or 1.0
            step = (w - 2 * pad) / max(len(values) - 1, 1)
            points = [
                QPointF(pad + j * step, h - pad - (v - lo) / span * (h - 2 * pad - 14))
                for j, v in enumerate(values)
            ]
            painter.drawPolyline(QPolygonF(points))
            painter.drawText(pad + 150 * i, 12, f"{name}: {values[-1]:.4g}")
        painter.end()


class ClassBars(QWidget):
    """One labelled bar per class, value in [0, 1]; None (e.g. the F1 of a class without images) shows
    an empty bar marked "—"."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[QProgressBar] = []
        self.setLayout(QVBoxLayout())

    def set_values(self, names: Sequence[str], values: Sequence[float | None], what: str = "") -> None:
        for bar in self.bars:
            bar.deleteLater()
        self.bars = []
        for name, v in zip(names, values, strict=True):
            bar = QProgressBar(maximum=1000, value=0 if v is None else int(round(1000 * float(v))))
            bar.setFormat(f"{name}{what}: {'—' if v is None else f'{float(v):.3f}'}")
            if v is None:
                bar.setToolTip("no images of this class: no value")
            self.layout().addWidget(bar)
            self.bars.append(bar)


def confusion_table(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> QTableWidget:
    """Confusion matrix (rows true, columns predicted) with cells shaded by their row share."""
    table = QTableWidget(len(names), len(names))
    table.setHorizontalHeaderLabels([f"→ {n}" for n in names])
    table.setVerticalHeaderLabels(list(names))
    for r, row in enumerate(matrix):
        total = max(sum(row), 1)
        for c, count in enumerate(row):
            item = QTableWidgetItem(str(count))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setBackground(QColor.fromHsvF(0.6, 0.8, 0.25 + 0.75 * count / total))
            table.setItem(r, c, item)
    return table
