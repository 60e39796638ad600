"""RetinaFace (facexlib's classes, biubug6's weights) built from a state dict, never downloaded."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .alignment import DetectedFace, faces_from_detections

RETINAFACE_MARKER_KEYS = ("ClassHead.0.conv1x1.weight", "LandmarkHead.0.conv1x1.weight")
DETECTION_LONG_SIDE = 1024
"""Photos are detected at most this large (faces in old photos are seldom smaller than 30 px
there); boxes and landmarks are scaled back to the photo."""


def retinaface_from_state_dict(state_dict: dict[str, torch.Tensor], device: torch.device):
    """Builds facexlib's RetinaFace for the weights' backbone (ResNet-50 or MobileNet-0.25) and
    loads them strictly. facexlib is imported here, not at start-up: it pulls numba."""
    from facexlib.detection.retinaface import RetinaFace

    network_name = "mobile0.25" if any(key.startswith("body.stage1.") for key in state_dict) else "resnet50"
    detector = RetinaFace(network_name=network_name, half=False, phase="test", device=device)
    detector.load_state_dict(state_dict, strict=True)
    return detector.to(device).eval()


def detect_faces(detector, image: np.ndarray, confidence: float = 0.97,
                 nms_threshold: float = 0.4) -> list[DetectedFace]:
    """Faces in an H x W x 3 RGB float image in [0, 1], largest first."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECTION_LONG_SIDE / max(height, width))
    bgr = (np.clip(image[..., ::-1], 0, 1) * 255).round().astype(np.uint8)
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        detections = detector.detect_faces(bgr, conf_threshold=confidence, nms_threshold=nms_threshold,
                                           use_origin_size=True)
    detections = np.asarray(detections, dtype=np.float32).reshape(-1, 15)
    detections[:, :4] /= scale
    detections[:, 5:] /= scale
    return faces_from_detections(detections)
