"""From the sampler's x0 estimate to the pixels the guidance losses are written on.

The face DDPM samples pixels: the map is the identity. A latent model (SD1.5, SDXL, ... with a
LoRA) samples latents: the losses need the decoded image, and the gradient must come back to the
latent. Two ways, both differentiable:
- the VAE decoder itself (exact; memory grows with the decoder's activations), built in host.py;
- `LinearRGBMap`: the model's latent -> RGB preview factors, upsampled to pixel size (fast, no
  VAE; the colours are a linear approximation of the decoder's, fine detail is lost).
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
import torch.nn.functional as F

ToPixels = Callable[[torch.Tensor], torch.Tensor]


class PixelMap(Protocol):
    scale: int
    """Pixels per latent pixel along each side."""

    def prepare(self, sample: torch.Tensor) -> ToPixels:
        """A differentiable x0 -> image in [-1, 1] on the sample's device, usable by autograd
        (called outside inference mode)."""


class IdentityMap:
    scale = 1

    def prepare(self, sample: torch.Tensor) -> ToPixels:
        return lambda x0: x0


class LinearRGBMap:
    """pixels = upsample(latent . factors + bias), the linear map ComfyUI's previews use."""

    def __init__(self, factors: list[list[float]], bias: list[float] | None = None, scale: int = 8):
        self.factors = torch.tensor(factors, dtype=torch.float32)
        self.bias = torch.tensor(bias if bias is not None else [0.0, 0.0, 0.0], dtype=torch.float32)
        self.scale = scale

    def prepare(self, sample: torch.Tensor) -> ToPixels:
        factors = self.factors.to(sample.device, sample.dtype).clone()
        bias = self.bias.to(sample.device, sample.dtype).clone()[None, :, None, None]
        if factors.shape[0] != sample.shape[1]:
            raise ValueError(f"the latent has {sample.shape[1]} channels, the RGB factors {factors.shape[0]}")

        def to_pixels(x0: torch.Tensor) -> torch.Tensor:
            rgb = torch.einsum("bchw,cr->brhw", x0, factors) + bias
            return F.interpolate(rgb, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return to_pixels


def latent_resolution(mask: torch.Tensor, scale: int) -> torch.Tensor:
    """A boolean pixel mask brought to latent size: a latent pixel is set if any pixel under it is."""
    if scale == 1:
        return mask
    return F.max_pool2d(mask.float(), scale, stride=scale) > 0
