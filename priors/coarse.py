"""The coarse restoration R: a feed-forward face restorer (CodeFormer at fidelity w, or GFPGAN /
RestoreFormer) run on aligned faces at 512 px in [-1, 1], the range they were trained on."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

RESTORER_SIZE = 512
FIDELITY_ARCHITECTURES = ("CodeFormer",)
"""Architectures whose forward takes a fidelity weight w (0: quality, 1: fidelity)."""


def coarse_restore(network: torch.nn.Module, architecture: str, faces: torch.Tensor, fidelity: float = 0.5,
                   check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> the restorer's output, same size, in [0, 1]. Faces are
    resized to 512 x 512 for the network and back, one at a time."""
    parameter = next(network.parameters())
    restored = []
    for face in faces:
        if check_interrupt is not None:
            check_interrupt()
        height, width = face.shape[-2:]
        x = F.interpolate(face[None].float(), size=(RESTORER_SIZE, RESTORER_SIZE), mode="bilinear",
                          align_corners=False, antialias=True) * 2 - 1
        x = x.to(parameter.device, parameter.dtype)
        with torch.no_grad():
            output = network(x, weight=fidelity) if architecture in FIDELITY_ARCHITECTURES else network(x)
        output = (output[0] if isinstance(output, (tuple, list)) else output).float().clamp(-1, 1)
        output = F.interpolate((output + 1) / 2, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=True)
        restored.append(output.clamp(0, 1).to(faces.device))
    return torch.cat(restored)
