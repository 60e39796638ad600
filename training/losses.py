"""The loss terms of the fine-tune beside each recipe's own (training/objectives.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.perceptual_loss import DEFAULT_WEIGHT


@dataclass(frozen=True)
class PerceptualLoss:
    """`weight` x LPIPS (models/perceptual_loss builds the network): what the fine-tune adds to
    its pixel loss."""
    network: torch.nn.Module
    weight: float = DEFAULT_WEIGHT

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The weighted distance of B x 3 x H x W RGB images in [-1, 1], averaged over the batch."""
        return self.weight * self.network(images, targets).mean()
