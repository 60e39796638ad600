"""The coarse restoration R: a feed-forward face restorer (CodeFormer at fidelity w, or GFPGAN /
RestoreFormer) run on aligned faces at its own size (512 px for every published checkpoint) in
[-1, 1], the range they were trained on."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Restorer = Callable[[torch.Tensor], torch.Tensor]
"""B x 3 x S x S in [-1, 1] -> the restored faces, float32 in [-1, 1] (on any device)."""


def coarse_restore(restorer: Restorer, faces: torch.Tensor, size: int,
                   check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> the restorer's output, same size, in [0, 1]. Faces are
    resized to the restorer's `size` x `size` and back, one at a time."""
    restored = []
    for face in faces:
        if check_interrupt is not None:
            check_interrupt()
        height, width = face.shape[-2:]
        x = restorer_input(face[None], size)
        output = F.interpolate((restorer(x) + 1) / 2, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=True)
        restored.append(output.clamp(0, 1).to(faces.device))
    return torch.cat(restored)


def restorer_input(faces: torch.Tensor, size: int) -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> B x 3 x size x size in [-1, 1], as the restorers take faces."""
    return F.interpolate(faces.float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True) * 2 - 1
