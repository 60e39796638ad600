"""MTCNN (facenet-pytorch's network and the weights its wheel ships): a face detector with the
same five landmarks as RetinaFace that needs no download. Its face-recognition network, whose
weights do download, is never built."""
from __future__ import annotations

import importlib.util

import torch

CHOICE = "MTCNN (built in, no download)"
"""How the face detector loader offers it, after the RetinaFace files."""
INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
"""--no-deps: the package's metadata pins an old torch and numpy; its MTCNN runs on current ones."""


def available() -> bool:
    return importlib.util.find_spec("facenet_pytorch") is not None


def build(device: torch.device) -> torch.nn.Module:
    """facenet-pytorch's MTCNN keeping every face, in eval mode on `device`."""
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=device).eval()
