"""IDM's extrinsic loop (Zhao et al., "Towards Authentic Face Restoration with Iterative Diffusion
Models and Beyond", ICCV 2023), as the pack runs it: each round's restoration becomes the next
round's coarse restoration, until k rounds are done or a round changes the faces by less than a
threshold. Each round's change, and how far the face's regions drift between rounds, are kept
to show whether the loop converges or wanders off the person."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class IterationResult:
    restorations: list[torch.Tensor] = field(default_factory=list)
    """Each round's output, B x 3 x H x W in [0, 1]."""
    changes: list[float] = field(default_factory=list)
    """Mean absolute change of each round against its input (in 0..1 pixel units)."""
    region_drifts: list[float] = field(default_factory=list)
    """Per round, the share of pixels whose face region differs from the previous round's (the
    coarse restoration's for the first); empty without a parser."""


def mean_change(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((after.float() - before.float()).abs().mean())


def region_drift(before: torch.Tensor, after: torch.Tensor) -> float:
    """The share of pixels whose label changed between two B x H x W label maps."""
    return float((before != after).float().mean())


def iterate(restore: Callable[[torch.Tensor], torch.Tensor], coarse: torch.Tensor, rounds: int,
            min_change: float = 0.0, regions: Callable[[torch.Tensor], torch.Tensor] | None = None) -> IterationResult:
    """`restore(coarse) -> restoration` run up to `rounds` times, each on the last output; stops
    early once a round changes less than `min_change`. `regions(images)` gives label maps for the
    drift (e.g. a face parser)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    result = IterationResult()
    current = coarse
    labels = regions(current) if regions is not None else None
    for _ in range(rounds):
        restored = restore(current)
        result.restorations.append(restored)
        result.changes.append(mean_change(current, restored))
        if regions is not None:
            new_labels = regions(restored)
            result.region_drifts.append(region_drift(labels, new_labels))
            labels = new_labels
        current = restored
        if result.changes[-1] < min_change:
            break
    return result
