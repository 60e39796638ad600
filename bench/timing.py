"""Timing shared by the benchmarks: interleaved rounds, medians, CUDA synchronised."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def seconds(function: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call, CUDA synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_seconds(functions: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                   warm_up: bool = True) -> dict[str, float]:
    """Median seconds per call, the candidates interleaved round by round so that a drift of
    the machine (clock, caches, other load) hits them alike."""
    if warm_up:
        for function in functions.values():
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(seconds(function, device))
    return {name: statistics.median(values) for name, values in times.items()}
