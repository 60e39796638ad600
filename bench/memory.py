"""Peak working memory of a call: what it allocates above what was live when it started, or
above what was live at the last `mark()` made during it (e.g. the start of a steady step)."""
from __future__ import annotations

from typing import Callable

import torch
from torch._C._autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

MARK = "working_memory.mark"


class WorkingMemory:
    """MiB: on CUDA the allocator's peak above the memory allocated at the start (or the last
    mark); on the CPU the peak of the running sum of every allocation and free the profiler
    records (exact, independent of the C allocator's caching; frees of older tensors count as
    negative)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda_base = 0

    def mark(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()
        else:
            with record_function(MARK):
                pass

    def peak_mib(self, function: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            self.mark()
            function()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.cuda_base) / 2 ** 20
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            function()
        events = profiler.profiler.kineto_results.events()
        marks = [event.start_ns() for event in events if event.name() == MARK]
        start = max(marks, default=0)
        allocations = sorted((event.start_ns(), event.nbytes()) for event in events
                             if event.name() == "[memory]" and event.device_type() == DeviceType.CPU)
        live = sum(nbytes for time, nbytes in allocations if time < start)
        base = peak = live
        for time, nbytes in allocations:
            if time >= start:
                live += nbytes
                peak = max(peak, live)
        return (peak - base) / 2 ** 20

