"""Long loops that are not sampling (training) inside ComfyUI: its progress bar, and Cancel
between steps."""
from __future__ import annotations

from typing import Callable

import comfy.utils

from .device import check_interrupt


def step_reporter(total: int) -> Callable[[int, float], None]:
    """`report(step, value)` after each of `total` steps: moves ComfyUI's progress bar and raises
    ComfyUI's interruption when the user pressed Cancel."""
    bar = comfy.utils.ProgressBar(total)

    def report(step: int, value: float) -> None:
        bar.update_absolute(step + 1, total)
        check_interrupt()

    return report
