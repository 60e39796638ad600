"""The selective masks of SSDiff's restoration stage, built from a scratch mask and a parsing."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .regions import (COLOUR_FREE_REGIONS, REFERENCE_STRUCTURE_REGIONS, SCRATCH_GROWTH_REGIONS,
                      region_mask)

SCRATCH_GROWTH_PX = 4
REFERENCE_GROWTH_PX = 8


def plus_dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grows a boolean B x 1 x H x W mask by `radius` px up, down, left and right (a plus-shaped
    structuring element, not a square)."""
    m = mask.float()
    size = 2 * radius + 1
    vertical = F.max_pool2d(m, (size, 1), stride=1, padding=(radius, 0))
    horizontal = F.max_pool2d(m, (1, size), stride=1, padding=(0, radius))
    return torch.maximum(vertical, horizontal) > 0


@dataclass(frozen=True)
class SelectiveMasks:
    """Boolean B x 1 x H x W masks.

    damage (M_o): pixels kept out of the structure term (scratches, grown where safe);
    reference (M_r): damaged background restored from the pseudo-reference's structure;
    colour_free (M_style): pixels whose colour is left alone.
    """
    damage: torch.Tensor
    reference: torch.Tensor
    colour_free: torch.Tensor


def selective_masks(scratch: torch.Tensor, labels: torch.Tensor | None) -> SelectiveMasks:
    """scratch: B x 1 x H x W in [0, 1] (1 = damaged); labels: B x H x W CelebAMask-HQ ids, or None
    for no parsing (every pixel then counts as skin: growth allowed everywhere, no background,
    colour guided everywhere)."""
    if labels is None:
        labels = torch.full_like(scratch[:, 0], 1, dtype=torch.long)
    grown = plus_dilate(scratch != 0, SCRATCH_GROWTH_PX) & region_mask(labels, SCRATCH_GROWTH_REGIONS)
    damage = (scratch > 0.5) | grown
    reference = plus_dilate(region_mask(labels, REFERENCE_STRUCTURE_REGIONS) & damage,
                            REFERENCE_GROWTH_PX)
    return SelectiveMasks(damage=damage, reference=reference,
                          colour_free=region_mask(labels, COLOUR_FREE_REGIONS))
