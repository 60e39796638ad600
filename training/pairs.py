"""The training pairs of a fine-tune: faces wired as batches and pairs read from a folder,
brought to the restorer's face size and range."""
from __future__ import annotations

from collections.abc import Iterable

import torch

from ..priors.coarse import restorer_input


def training_pairs(degraded: torch.Tensor | None, targets: torch.Tensor | None,
                   folder_pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], size: int,
                   folder_input: str = "pairs_folder") -> tuple[torch.Tensor, torch.Tensor]:
    """The wired batches (B x 3 x H x W RGB in [0, 1], both or neither) and the folder's pairs
    (each 1 x 3 x H x W), as the restorer takes faces (`size` px, [-1, 1])."""
    if (degraded is None) != (targets is None):
        raise ValueError(f"connect both degraded and targets (one target per degraded face), or neither and give "
                         f"{folder_input}")
    degraded_faces, target_faces = [], []
    if degraded is not None:
        if targets.shape[0] != degraded.shape[0]:
            raise ValueError(f"targets has a batch of {targets.shape[0]}, degraded a batch of {degraded.shape[0]}: "
                             "give one target per degraded face, in the same order")
        degraded_faces.append(restorer_input(degraded, size))
        target_faces.append(restorer_input(targets, size))
    for degraded_face, target_face in folder_pairs:
        degraded_faces.append(restorer_input(degraded_face, size))
        target_faces.append(restorer_input(target_face, size))
    if not degraded_faces:
        raise ValueError(f"no training pairs: connect degraded and targets, or give {folder_input}")
    return torch.cat(degraded_faces), torch.cat(target_faces)
