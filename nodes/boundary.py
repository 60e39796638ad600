"""Conversions at the node boundary, used by every node: ComfyUI's IMAGE (B x H x W x C, 0..1) and
MASK (B x H x W), as input_checks let them in, to the method's B x C x H x W tensors in [-1, 1] or
the priors' in [0, 1], and back; plus batch and size matching and padding."""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F


def rgb_channels(image: torch.Tensor) -> torch.Tensor:
    """IMAGE (... x H x W x 1, 3 or 4) -> its RGB channels, ... x H x W x 3: grayscale repeated,
    alpha dropped."""
    return image[..., :3] if image.shape[-1] >= 3 else image.expand(*image.shape[:-1], 3)


def image_to_model(image: torch.Tensor) -> torch.Tensor:
    """IMAGE -> B x 3 x H x W in [-1, 1]. Grayscale is copied to RGB, alpha is dropped."""
    return image_to_rgb(image) * 2 - 1


def image_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """IMAGE -> B x 3 x H x W in [0, 1], the priors' convention. Grayscale is copied to RGB, alpha
    is dropped, a small overshoot is clamped."""
    return rgb_channels(image).movedim(-1, 1).float().clamp(0, 1)


def channels_first(image: torch.Tensor) -> torch.Tensor:
    """IMAGE -> B x C x H x W in [0, 1] with all its channels (alpha kept)."""
    return image.movedim(-1, 1)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W in [0, 1] -> IMAGE."""
    return x.movedim(1, -1).contiguous()


def model_to_image(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1).movedim(1, -1).contiguous()


def mask_to_model(mask: torch.Tensor) -> torch.Tensor:
    """MASK (B x H x W or H x W) -> B x 1 x H x W in [0, 1]."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    return mask.float().clamp(0, 1).unsqueeze(1)


def require_batch(tensor: torch.Tensor, batch: int, name: str, of: str) -> None:
    """Companion inputs come one per item of `of` (a batch of `batch`) or one for all."""
    if tensor.shape[0] not in (1, batch):
        raise ValueError(f"{name} has a batch of {tensor.shape[0]}, {of} a batch of {batch}: give one per "
                         f"{of} or a single one for all")


def match_size(tensor: torch.Tensor, size: tuple[int, int], name: str, mode: str = "bilinear") -> torch.Tensor:
    """Resizes a B x C x H x W tensor to `size`, with a warning: inputs of one face should share
    a size, but a coarse restoration at 512 px beside a smaller crop is common."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    logging.warning("SSDiff: %s is %s, resizing it to the image's %s", name,
                    tuple(tensor.shape[-2:]), tuple(size))
    if mode == "nearest":
        return F.interpolate(tensor.float(), size=size, mode="nearest").to(tensor.dtype)
    return F.interpolate(tensor.float(), size=size, mode=mode, align_corners=False, antialias=True)


def pad_to_multiple(tensor: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pads the bottom and right edges up to a multiple of `multiple`."""
    height, width = tensor.shape[-2:]
    pad_bottom, pad_right = -height % multiple, -width % multiple
    if not (pad_bottom or pad_right):
        return tensor
    return F.pad(tensor.float(), (0, pad_right, 0, pad_bottom), mode="replicate").to(tensor.dtype)
