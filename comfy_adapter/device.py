"""Where the pack's networks compute, and Cancel: ComfyUI's device choice (--cpu, --gpu-only, ...)
and its interruption, for every node that runs a network or a long loop."""
from __future__ import annotations

import torch

import comfy.model_management


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def check_interrupt() -> None:
    """Raises ComfyUI's interruption when the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def require_total_memory(needed: int, work: str, fix: str) -> None:
    """Refuses, before anything is allocated, work that needs more than the compute device's whole
    memory (unloading other models could not make room): the message names the work, both sizes
    and `fix`."""
    device = compute_device()
    total = comfy.model_management.get_total_memory(device)
    if needed > total:
        raise ValueError(f"{work} needs about {needed / 2**30:,.1f} GiB, more than the {total / 2**30:.1f} GiB of "
                         f"{device}: {fix}")
