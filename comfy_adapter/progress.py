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


def item_reporter(total: int) -> Callable[[], None]:
    """`before_item()` before each of `total` items (the photos of a batch): raises ComfyUI's
    interruption when the user pressed Cancel, and moves its progress bar to the items done."""
    bar = comfy.utils.ProgressBar(total)
    done = [0]

    def before_item() -> None:
        check_interrupt()
        bar.update_absolute(done[0], total)
        done[0] += 1

    return before_item
