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
