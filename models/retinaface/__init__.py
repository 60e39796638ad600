"""RetinaFace (facexlib's classes, biubug6's weights) built from a state dict, never downloaded."""
from __future__ import annotations

import torch

from ..files import Kind, ModelFile

FILE = ModelFile("RetinaFace face detector", Kind.FACE_DETECTOR,
                 marker_keys=("ClassHead.0.conv1x1.weight", "LandmarkHead.0.conv1x1.weight"))


def build(state_dict: dict[str, torch.Tensor], device: torch.device):
    """facexlib's RetinaFace for the weights' backbone (ResNet-50 or MobileNet-0.25), loaded
    strictly, on `device`. facexlib is imported here, not at start-up: it pulls numba."""
    from facexlib.detection.retinaface import RetinaFace

    network_name = "mobile0.25" if any(key.startswith("body.stage1.") for key in state_dict) else "resnet50"
    detector = RetinaFace(network_name=network_name, half=False, phase="test", device=device)
    detector.load_state_dict(state_dict, strict=True)
    return detector.to(device).eval()
