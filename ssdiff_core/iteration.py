"""IDM's extrinsic loop (Zhao et al., "Towards Authentic Face Restoration with Iterative Diffusion
Models and Beyond", ICCV 2023), as the pack runs it: each round's restoration becomes the next
round's coarse restoration, until k rounds are done or a round changes the faces by less than a
threshold. Each round's change, and how far the face's regions and identity drift between
rounds, are kept to show whether the loop converges or wanders off the person."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class IterationResult:
    restorations: list[torch.Tensor] = field(default_factory=list)
    """Each round's output as `restore` gives it; the loop never looks at the layout (SSDiff Iterate
    gives ComfyUI IMAGEs, B x H x W x 3 in [0, 1])."""
    changes: list[float] = field(default_factory=list)
    """Mean absolute change of each round against its input (in 0..1 pixel units)."""
    region_drifts: list[float] = field(default_factory=list)
    """Per round, the share of pixels whose face region differs from the previous round's (the
    coarse restoration's for the first); empty without a parser."""
    identity_angles: list[float] = field(default_factory=list)
    """Per round, the angle (degrees) between the face embeddings of the round and of the previous
    round (the coarse restoration's for the first); empty without an embedding."""
    identity_angles_from_start: list[float] = field(default_factory=list)
    """Per round, the angle between the round's embedding and the coarse restoration's."""
    identity_angles_to_references: list[float] = field(default_factory=list)
    """Per round, the angle between the round's embedding and the reference faces' identity;
    empty without references."""


def mean_change(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((after.float() - before.float()).abs().mean())


def region_drift(before: torch.Tensor, after: torch.Tensor) -> float:
    """The share of pixels whose label changed between two B x H x W label maps."""
    return float((before != after).float().mean())


def embedding_angle(before: torch.Tensor, after: torch.Tensor) -> float:
    """The mean over images of the angle, in degrees, between two B x D unit-length embeddings
    (the IDS of face restoration papers)."""
    cosine = (before.float() * after.float()).sum(dim=1).clamp(-1, 1)
    return float(torch.rad2deg(torch.arccos(cosine)).mean())


def iterate(restore: Callable[[torch.Tensor], torch.Tensor], coarse: torch.Tensor, rounds: int,
            min_change: float = 0.0, regions: Callable[[torch.Tensor], torch.Tensor] | None = None,
            embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
            reference: torch.Tensor | None = None) -> IterationResult:
    """`restore(coarse) -> restoration` run up to `rounds` times, each on the last output; stops
    early once a round changes less than `min_change`. `regions(images)` gives label maps for the
    region drift (e.g. a face parser), `embed(images)` B x D unit-length embeddings for the
    identity drift (e.g. ArcFace); `reference` (D, unit length) the identity each round is
    measured against, with `embed`."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    result = IterationResult()
    current = coarse
    labels = regions(current) if regions is not None else None
    start_embedding = embedding = embed(current) if embed is not None else None
    for _ in range(rounds):
        restored = restore(current)
        result.restorations.append(restored)
        result.changes.append(mean_change(current, restored))
        if regions is not None:
            new_labels = regions(restored)
            result.region_drifts.append(region_drift(labels, new_labels))
            labels = new_labels
        if embed is not None:
            new_embedding = embed(restored)
            result.identity_angles.append(embedding_angle(embedding, new_embedding))
            result.identity_angles_from_start.append(embedding_angle(start_embedding, new_embedding))
            embedding = new_embedding
            if reference is not None:
                result.identity_angles_to_references.append(
                    embedding_angle(new_embedding, reference.to(new_embedding)[None].expand_as(new_embedding)))
        current = restored
        if result.changes[-1] < min_change:
            break
    return result
