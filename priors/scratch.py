"""Scratch detection with BOPBTL's detection UNet: the pre- and
post-processing of BOPBTL's `Global/detection.py`, and the binary mask built from it.

BOPBTL reads an 8-bit RGB file, resizes it with PIL (bicubic) to a "working" size whose sides are
multiples of 16, converts it to PIL "L" grayscale, maps it to [-1, 1], rescales it (bilinear) so
that its short side is 256 whatever the working size, and thresholds the sigmoid of the logits at
0.4 after a nearest resize back to the working size. Here the probabilities also go back to the
input size (nearest), and thresholding is left to `scratch_mask`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .arrays import image_array, image_tensor

ResizeMode = Literal["full_size", "scale_256"]
RESIZE_MODES: tuple[ResizeMode, ...] = ("full_size", "scale_256")
NETWORK_SHORT_SIDE = 256
DEFAULT_THRESHOLD = 0.4
_MULTIPLE = 16


def _round_to_multiple(length: float) -> int:
    # Python's round (half to even), as BOPBTL: 264 -> 256, 280 -> 288, 8 -> 0 (clamped below).
    return max(_MULTIPLE, int(round(length / _MULTIPLE) * _MULTIPLE))


def working_size(height: int, width: int, resize_mode: ResizeMode = "full_size") -> tuple[int, int]:
    """(height, width) of BOPBTL's resized input: `full_size` rounds each side to the nearest
    multiple of 16, `scale_256` makes the short side 256 and rounds the long one. Never below 16
    (BOPBTL would produce 0 for sides under 8 px)."""
    if resize_mode == "full_size":
        return _round_to_multiple(height), _round_to_multiple(width)
    if resize_mode == "scale_256":
        return network_size(height, width)
    raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")


def network_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) the network sees: short side 256, long side rounded to a multiple of 16."""
    if height < width:
        return NETWORK_SHORT_SIDE, _round_to_multiple(width / height * NETWORK_SHORT_SIDE)
    return _round_to_multiple(height / width * NETWORK_SHORT_SIDE), NETWORK_SHORT_SIDE


NETWORK_BYTES_PER_PIXEL = 2700
"""The detection UNet's working memory per pixel of its input, fp32: measured 2,665 to 2,677 bytes
at 256 x 256, 256 x 1024 and 256 x 4096 on the CPU under bench/memory.py's profiler."""


def working_bytes(height: int, width: int, resize_mode: ResizeMode = "full_size") -> int:
    """Device memory one photo's detection needs beside the weights: the UNet at the network's size
    (short side 256, whatever the photo's) and the probability at the working and the photo's size.
    Only the last part grows with the photo, by 8 bytes a pixel."""
    size = working_size(height, width, resize_mode)
    network_height, network_width = network_size(*size)
    return NETWORK_BYTES_PER_PIXEL * network_height * network_width + 4 * (size[0] * size[1] + height * width)


def _to_levels(rgb: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to uint8 levels (the 8-bit file BOPBTL reads), on the CPU."""
    levels = torch.nan_to_num(rgb.detach().float(), nan=0.0).clamp(0, 1).mul(255).round()
    return levels.to(torch.uint8).cpu()


def _luma_from_levels(levels: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> "L": ITU-R 601 luma in 16-bit fixed point (19595, 38470, 7471) / 65536,
    rounded; uint8 ... x 3 x H x W to float ... x 1 x H x W in [0, 1]."""
    red, green, blue = levels.to(torch.int32).unbind(-3)
    luma = (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16
    return (luma.float() / 255).unsqueeze(-3)


def pil_luma(image: torch.Tensor) -> torch.Tensor:
    """Grayscale exactly as PIL `Image.convert("L")` on the image's 8-bit levels:
    ... x 3 x H x W in [0, 1] to ... x 1 x H x W in [0, 1] (multiples of 1/255), same device."""
    return _luma_from_levels(_to_levels(image)).to(image.device)


def _working_grayscale(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One 3 x H x W image to BOPBTL's grayscale 1 x 1 x h x w at the working size, on the CPU."""
    levels = _to_levels(rgb)
    if tuple(levels.shape[1:]) != size:
        resized = Image.fromarray(image_array(levels)).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        levels = image_tensor(np.array(resized))
    return _luma_from_levels(levels).unsqueeze(0)


@torch.no_grad()
def detect_scratch_probability(network: nn.Module, image: torch.Tensor,
                               resize_mode: ResizeMode = "full_size",
                               check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """Per-pixel scratch probability, B x 1 x H x W in [0, 1] on the image's device, for a
    B x 3 x H x W RGB image in [0, 1] of any size.

    Images go through the network one at a time (at ~256 px short side) on the network's device
    and dtype; `check_interrupt` is called before each. The network is put in eval mode."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected a B x 3 x H x W RGB image, got shape {tuple(image.shape)}")
    batch, _, height, width = image.shape
    size = working_size(height, width, resize_mode)
    network.eval()
    weight = next(network.parameters())
    probability = torch.empty(batch, 1, height, width, device=image.device)
    for index in range(batch):
        if check_interrupt is not None:
            check_interrupt()
        gray = (_working_grayscale(image[index], size) - 0.5) / 0.5
        # On the CPU in float32 before moving, as BOPBTL does.
        gray = F.interpolate(gray, size=network_size(*size), mode="bilinear", align_corners=False)
        logits = network(gray.to(weight.device, weight.dtype))
        if logits.shape[1] != 1:
            raise ValueError(f"the scratch network returned {logits.shape[1]} channels, not 1")
        p = F.interpolate(torch.sigmoid(logits.float()), size=size, mode="nearest")
        if size != (height, width):
            p = F.interpolate(p, size=(height, width), mode="nearest")
        probability[index] = p[0].to(image.device)
    return probability


def _hand_mask(mask: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    """A hand-painted mask as a boolean (1 or B) x 1 x H x W matching `like`."""
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != like.shape[2:] or \
            mask.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"{name} mask has shape {tuple(mask.shape)}, expected "
                         f"({like.shape[0]} or 1) x 1 x {like.shape[2]} x {like.shape[3]}")
    return mask.to(like.device) > 0.5


def scratch_mask(probability: torch.Tensor, threshold: float = DEFAULT_THRESHOLD,
                 dilation_px: int = 0, add: torch.Tensor | None = None,
                 erase: torch.Tensor | None = None) -> torch.Tensor:
    """Binary B x 1 x H x W float mask (1 = damaged): probability >= threshold, grown by a
    (2 * dilation_px + 1) px square, then united with `add` and cut by `erase` (both > 0.5,
    B or 1 x 1 x H x W; H x W and B x H x W are also accepted)."""
    if probability.ndim != 4 or probability.shape[1] != 1:
        raise ValueError(f"expected B x 1 x H x W probabilities, got {tuple(probability.shape)}")
    if dilation_px < 0:
        raise ValueError(f"dilation_px must be >= 0, got {dilation_px}")
    mask = probability >= threshold
    if dilation_px > 0:
        mask = F.max_pool2d(mask.float(), 2 * dilation_px + 1, stride=1, padding=dilation_px) > 0
    if add is not None:
        mask = mask | _hand_mask(add, probability, "add")
    if erase is not None:
        mask = mask & ~_hand_mask(erase, probability, "erase")
    dtype = probability.dtype if probability.is_floating_point() else torch.float32
    return mask.to(dtype)
