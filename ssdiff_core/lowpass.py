"""The low-frequency band of an image: down- then up-sampled by a factor with the cubic,
antialiased resizer of Kuai et al.'s pseudo-target sampler (the MATLAB imresize convention:
Keys' cubic kernel, a = -0.5, stretched by 1/scale when shrinking; output pixel o centred on input
coordinate (o + 0.5) / scale - 0.5; edges mirrored with the edge pixel repeated; each output's
weights summing to 1). torch's `interpolate` modes differ from it by 0.07-0.7 on a face, so it is
written here as one dense matrix per image side.
"""
from __future__ import annotations

import functools
import math

import torch

KEYS_A = -0.5


def keys_cubic(distance: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (Keys 1981, eq. 15)."""
    d = distance.abs()
    near = (1.5 * d ** 3 - 2.5 * d ** 2 + 1) * (d <= 1)
    far = (KEYS_A * d ** 3 - 5 * KEYS_A * d ** 2 + 8 * KEYS_A * d - 4 * KEYS_A) * ((d > 1) & (d <= 2))
    return near + far


@functools.lru_cache(maxsize=32)
def resize_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """out_size x in_size float64 matrix resizing one image side (rows are output pixels)."""
    scale = out_size / in_size
    stretch = min(scale, 1.0)  # antialiasing: the kernel widened by 1/scale when shrinking
    half_width = 2 / stretch
    centres = (torch.arange(out_size, dtype=torch.float64) + 0.5) / scale - 0.5
    taps = torch.arange(-math.ceil(half_width) - 1, math.ceil(half_width) + 2, dtype=torch.float64)
    positions = torch.floor(centres)[:, None] + taps[None, :]
    weights = stretch * keys_cubic(stretch * (centres[:, None] - positions))
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = 2 * in_size  # symmetric edges: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
    wrapped = positions.long() % period
    sources = torch.where(wrapped < in_size, wrapped, period - 1 - wrapped)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.scatter_add_(1, sources, weights)
    return matrix


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B x C x H x W -> B x C x height x width with the cubic antialiased resizer (H, then W)."""
    rows = resize_matrix(image.shape[-2], height).to(image.device, image.dtype)
    columns = resize_matrix(image.shape[-1], width).to(image.device, image.dtype)
    return torch.einsum("oh,bchw,pw->bcop", rows, image, columns)


def low_frequencies(image: torch.Tensor, factor: int) -> torch.Tensor:
    """up(down(image)): the band below 1/factor of the sampling rate (the paper's filter, with the
    factor 8 of its CodeFormer targets), at any size: the small side is the image's over the
    factor, rounded, at least one pixel."""
    height, width = image.shape[-2:]
    small = resize(image, max(1, round(height / factor)), max(1, round(width / factor)))
    return resize(small, height, width)
