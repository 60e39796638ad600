"""SSDiff's normalised guidance step: the gradient moves x_{t-1} by `scale` times the length of
the step the sampler just took, per colour channel."""
from __future__ import annotations

import torch


def normalised_step_coefficients(displacement: torch.Tensor, gradient: torch.Tensor, scale: float,
                                 per_image: bool = True, per_channel: bool = True) -> torch.Tensor:
    """k = scale * ||x_t - x_{t-1}|| / ||g||, broadcastable to B x C x H x W.

    per_image: norms per image (False: one norm over the batch, as the released code does);
    per_channel: norms per colour channel (False: one norm over all channels).
    A zero gradient gives k = 0 (no correction) instead of a division by zero.
    """
    dims = [2, 3]
    if not per_channel:
        dims.insert(0, 1)
    if not per_image:
        dims.insert(0, 0)
    step_norm = displacement.square().sum(dim=dims, keepdim=True).sqrt()
    gradient_norm = gradient.square().sum(dim=dims, keepdim=True).sqrt()
    safe_norm = torch.where(gradient_norm > 0, gradient_norm, torch.ones_like(gradient_norm))
    return torch.where(gradient_norm > 0, scale * step_norm / safe_norm, torch.zeros_like(gradient_norm))


def apply_normalised_correction(x_t: torch.Tensor, x_prev: torch.Tensor, gradient: torch.Tensor,
                                scale: float, per_image: bool = True,
                                per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (corrected x_{t-1}, k)."""
    k = normalised_step_coefficients(x_t - x_prev, gradient, scale, per_image, per_channel)
    return x_prev - k * gradient, k
