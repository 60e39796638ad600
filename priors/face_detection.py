"""Faces found by RetinaFace (models/retinaface) in a photo, at a size it detects well."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .alignment import DetectedFace, faces_from_detections

DETECTION_LONG_SIDE = 1024
"""Photos are detected at most this large (faces in old photos are seldom smaller than 30 px
there); boxes and landmarks are scaled back to the photo."""


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
