"""Conversions at the node boundary, used by every node: ComfyUI's IMAGE (B x H x W x C, 0..1) and
MASK (B x H x W), checked for invalid values, to the method's B x C x H x W tensors in [-1, 1] or
the priors' in [0, 1], and back; plus size matching and padding."""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F


def require_finite(tensor: torch.Tensor, name: str) -> None:
    """Refuses NaN and infinite values, which would spread through every later step unseen."""
    invalid = int((~torch.isfinite(tensor)).sum())
    if invalid:
        raise ValueError(f"{name} contains {invalid} NaN or infinite values (of {tensor.numel()}): the node "
                         f"that made it produced invalid pixels; fix or replace that node's output")


def rgb_channels(image: torch.Tensor) -> torch.Tensor:
    """IMAGE (... x H x W x 1, 3 or 4) -> its RGB channels, ... x H x W x 3: grayscale repeated,
    alpha dropped."""
    return image[..., :3] if image.shape[-1] >= 3 else image.expand(*image.shape[:-1], 3)


def image_to_model(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """IMAGE -> B x 3 x H x W in [-1, 1]. Grayscale is copied to RGB, alpha is dropped."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name} must be an IMAGE (B x H x W x 1, 3 or 4 channels), got shape "
                         f"{tuple(image.shape)}")
    return image_to_rgb(image, name).clamp(0, 1) * 2 - 1


def image_to_rgb(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """IMAGE -> B x 3 x H x W in [0, 1], the priors' convention. Grayscale is copied to RGB, alpha
    is dropped."""
    require_finite(image, name)
    return rgb_channels(image).movedim(-1, 1).float()


def channels_first(image: torch.Tensor) -> torch.Tensor:
    """IMAGE -> B x C x H x W in [0, 1] with all its channels (alpha kept)."""
    return image.movedim(-1, 1)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W in [0, 1] -> IMAGE."""
    return x.movedim(1, -1).contiguous()


def model_to_image(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1).movedim(1, -1).contiguous()


def mask_to_model(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """MASK (B x H x W or H x W) -> B x 1 x H x W in [0, 1]."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"{name} must be a MASK (B x H x W), got shape {tuple(mask.shape)}")
    require_finite(mask, name)
    return mask.float().clamp(0, 1).unsqueeze(1)


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
