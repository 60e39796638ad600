"""Numbers a node reports drawn as a picture (matplotlib, off-screen): ComfyUI previews an IMAGE
where a list of numbers would have to be read."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from .arrays import image_tensor


def line_plot(series: dict[str, list[float]], title: str, x_label: str, y_label: str,
              log_y: bool = False, right: dict[str, list[float]] | None = None,
              right_label: str = "") -> torch.Tensor:
    """One line per named series against its index (from 1) -> a 3 x H x W float image in [0, 1];
    `right`: series of another unit, dashed, on a second y axis."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.subplots()
    for name, values in series.items():
        axes.plot(np.arange(1, len(values) + 1), values, label=name, marker="o" if len(values) < 20 else None)
    axes.set_title(title)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if log_y and all(value > 0 for values in series.values() for value in values):
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    lines = axes.get_lines()
    if right:
        right_axes = axes.twinx()
        for index, (name, values) in enumerate(right.items(), start=len(series)):
            right_axes.plot(np.arange(1, len(values) + 1), values, label=name, linestyle="--", color=f"C{index}",
                            marker="s" if len(values) < 20 else None)
        right_axes.set_ylabel(right_label)
        lines = lines + right_axes.get_lines()
    if len(lines) > 1:
        axes.legend(lines, [line.get_label() for line in lines])
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    with Image.open(buffer) as picture:
        return image_tensor(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255)
