"""SSDiff's guidance losses on the x0 estimate. Images are B x 3 x H x W in [-1, 1]; masks are
boolean B x 1 x H x W. Every loss is a sum of squares, as in the paper."""
from __future__ import annotations

import torch
import torch.nn.functional as F

FACE_COLOUR_MEAN = (0.03202754, -0.16308397, -0.26475719)
FACE_COLOUR_STD = (0.53549316, 0.47539538, 0.46814889)
"""Per-channel colour statistics of CelebA-HQ faces in [-1, 1] units (the stage-1 colour prior)."""


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """Channel mean, copied back into every channel."""
    return image.mean(dim=1, keepdim=True).expand_as(image)


def lightness_loss(x0: torch.Tensor, degraded: torch.Tensor, undamaged: torch.Tensor) -> torch.Tensor:
    """Squared grayscale difference to the degraded input over undamaged pixels. The grayscale
    fills all three channels, so the sum is three times the single-channel one."""
    return ((grayscale(x0) - grayscale(degraded)) ** 2 * undamaged).sum()


def adain_to_face_colour(image: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN: per-channel mean/std (unbiased variance + eps) replaced by the face statistics,
    clamped to [-1, 1]."""
    flat = image.flatten(2)
    mean = flat.mean(dim=2)[..., None, None]
    std = (flat.var(dim=2) + eps).sqrt()[..., None, None]
    target_mean = image.new_tensor(FACE_COLOUR_MEAN)[None, :, None, None]
    target_std = image.new_tensor(FACE_COLOUR_STD)[None, :, None, None]
    return ((image - mean) / std * target_std + target_mean).clamp(-1, 1)


def face_colour_loss(x0: torch.Tensor, colour_source: torch.Tensor) -> torch.Tensor:
    """Squared difference to an AdaIN-recoloured copy of `colour_source` (x0 itself or the
    degraded input); when the source is x0 the gradient also flows through the copy."""
    return ((x0 - adain_to_face_colour(colour_source)) ** 2).sum()


def structure_loss(x0: torch.Tensor, coarse: torch.Tensor, damage: torch.Tensor) -> torch.Tensor:
    """Squared difference to the coarse restoration outside the damage mask M_o."""
    return ((x0 - coarse) ** 2 * ~damage).sum()


def gradient_magnitude(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """|vertical diff| + |horizontal diff|, channel-averaged, counting only pairs of pixels that
    are both inside `region`. Returns B x 1 x H x W (the last row/column pads with zeros)."""
    inside = region.to(image.dtype)
    vertical = (image[:, :, :-1] - image[:, :, 1:]).abs() * inside[:, :, :-1] * inside[:, :, 1:]
    horizontal = (image[..., :-1] - image[..., 1:]).abs() * inside[..., :-1] * inside[..., 1:]
    return (F.pad(vertical.mean(1, keepdim=True), (0, 0, 0, 1))
            + F.pad(horizontal.mean(1, keepdim=True), (0, 1, 0, 0)))


def reference_structure_loss(x0: torch.Tensor, reference: torch.Tensor,
                             region: torch.Tensor) -> torch.Tensor:
    """Squared difference of local gradient magnitudes to the pseudo-reference inside M_r."""
    difference = gradient_magnitude(x0, region) - gradient_magnitude(reference, region)
    return (difference ** 2 * region).sum()


def colour_loss(x0: torch.Tensor, colour_target: torch.Tensor, colour_free: torch.Tensor) -> torch.Tensor:
    """Squared difference to the colour target outside M_style."""
    return ((x0 - colour_target) ** 2 * ~colour_free).sum()
