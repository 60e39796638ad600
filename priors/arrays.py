"""The one place where a prior's tensors become arrays for OpenCV or PIL, and back. Priors take and
give B x C x H x W (or C x H x W) float tensors in [0, 1], as nodes/boundary.py hands them over;
OpenCV and PIL want H x W x C arrays. Every other module of priors/ and ssdiff_core/ stays in the
tensors' layout (tests/test_layout.py holds it)."""
from __future__ import annotations

import numpy as np
import torch


def image_array(image: torch.Tensor) -> np.ndarray:
    """... x C x H x W tensor -> ... x H x W x C array on the CPU: float tensors as float32 (as
    OpenCV takes them), integer levels with their own dtype (as PIL takes them)."""
    channels_last = image.detach().movedim(-3, -1)
    if channels_last.is_floating_point():
        channels_last = channels_last.float()
    return channels_last.cpu().numpy()


def image_tensor(array: np.ndarray) -> torch.Tensor:
    """... x H x W x C array (what OpenCV or PIL gave back) -> ... x C x H x W tensor, its dtype kept."""
    return torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, -3)


def mask_array(mask: torch.Tensor) -> np.ndarray:
    """H x W mask tensor -> H x W float32 array on the CPU."""
    return mask.detach().float().cpu().numpy()


def mask_tensor(array: np.ndarray) -> torch.Tensor:
    """... x H x W mask array -> a tensor of the same shape and dtype."""
    return torch.from_numpy(np.ascontiguousarray(array))
