"""Colour transfer used at T1 to build the colour target. The photorealistic network (CAP-VSTNet)
plugs in through the same signature; this module holds the built-in fallback."""
from __future__ import annotations

from typing import Callable

import torch

ColourTransfer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(content, style, region) -> content recoloured towards style. Images B x 3 x H x W in
[-1, 1]; region: boolean B x 1 x H x W, the pixels whose statistics count."""


def masked_mean_std_transfer(content: torch.Tensor, style: torch.Tensor,
                             region: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-channel mean/std transfer with statistics taken inside `region` of both images.
    An image whose region is empty is returned unchanged."""
    weight = region.to(content.dtype)
    count = weight.sum(dim=(2, 3), keepdim=True).clamp(min=1)

    def statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (image * weight).sum(dim=(2, 3), keepdim=True) / count
        variance = ((image - mean) ** 2 * weight).sum(dim=(2, 3), keepdim=True) / count
        return mean, (variance + eps).sqrt()

    content_mean, content_std = statistics(content)
    style_mean, style_std = statistics(style)
    transferred = ((content - content_mean) / content_std * style_std + style_mean).clamp(-1, 1)
    return torch.where(region.flatten(1).any(dim=1)[:, None, None, None], transferred, content)
