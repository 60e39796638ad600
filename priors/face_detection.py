"""Faces found by a face detector (RetinaFace from models/retinaface, or MTCNN from models/mtcnn)
in a photo, at a size it detects well. Each detector scores on its own scale, so each has its own
default confidence."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from .alignment import DetectedFace, faces_from_detections

DETECTION_LONG_SIDE = 1024
"""Photos are detected at most this large (faces in old photos are seldom smaller than 30 px
there); boxes and landmarks are scaled back to the photo."""
RETINAFACE_CONFIDENCE = 0.97
"""facexlib's FaceRestoreHelper keeps RetinaFace faces from this score, as SSDiff's face extraction."""
RETINAFACE_FLOOR = 0.5
"""RetinaFace is asked for faces from this score, so that those below the confidence can be named."""
RETINAFACE_NMS = 0.4
MTCNN_CONFIDENCE = 0.7
"""MTCNN's own last-stage threshold: every face it returns scores at least this."""


@dataclass(frozen=True)
class FaceDetector:
    """What SSDiff Face Detector Loader gives Face Crop."""
    name: str
    default_confidence: float
    find: Callable[[np.ndarray], np.ndarray]
    """H x W x 3 uint8 RGB -> N x 15 rows: box x1, y1, x2, y2, score, five landmarks (x, y) in the
    FFHQ template's order (image-left eye first)."""
    network: torch.nn.Module | None = None
    """The network `find` runs (facexlib's RetinaFace, facenet-pytorch's MTCNN), for the memory
    management that moves it."""


def retinaface_detector(network: torch.nn.Module) -> FaceDetector:
    return FaceDetector("RetinaFace", RETINAFACE_CONFIDENCE, functools.partial(_retinaface_rows, network), network)


def mtcnn_detector(network: torch.nn.Module) -> FaceDetector:
    return FaceDetector("MTCNN", MTCNN_CONFIDENCE, functools.partial(_mtcnn_rows, network), network)


def _follow_weights(network: torch.nn.Module) -> None:
    """facexlib's RetinaFace and facenet-pytorch's MTCNN move their inputs to `network.device`, the
    device they were built for; ComfyUI decides where the weights are (system memory under --novram):
    the detector is pointed there, with RetinaFace's mean (a plain attribute, not a buffer)."""
    weights = next(network.parameters()).device
    if getattr(network, "device", weights) != weights:
        network.device = weights
        if isinstance(getattr(network, "mean_tensor", None), torch.Tensor):
            network.mean_tensor = network.mean_tensor.to(weights)


def _retinaface_rows(network: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """facexlib's RetinaFace takes BGR uint8 (it subtracts its BGR means itself)."""
    _follow_weights(network)
    with torch.no_grad():
        return network.detect_faces(np.ascontiguousarray(rgb[..., ::-1]), conf_threshold=RETINAFACE_FLOOR,
                                    nms_threshold=RETINAFACE_NMS, use_origin_size=True)


def _mtcnn_rows(network: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    _follow_weights(network)
    with torch.no_grad():
        boxes, scores, landmarks = network.detect(rgb, landmarks=True)
    if boxes is None:
        return np.zeros((0, 15), np.float32)
    # Under numpy 2 facenet-pytorch returns object arrays.
    columns = [np.asarray(part.tolist(), np.float32).reshape(len(boxes), -1) for part in (boxes, scores, landmarks)]
    return np.concatenate(columns, axis=1)


def detect_faces(detector: FaceDetector, image: np.ndarray, confidence: float | None = None) -> list[DetectedFace]:
    """Faces scoring at least `confidence` (None: the detector's own) in an H x W x 3 RGB float
    image in [0, 1], largest first. Faces found below it are named in a warning."""
    threshold = detector.default_confidence if confidence is None else confidence
    height, width = image.shape[:2]
    scale = min(1.0, DETECTION_LONG_SIDE / max(height, width))
    rgb = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    detections = np.asarray(detector.find(rgb), dtype=np.float32).reshape(-1, 15)
    detections[:, :4] /= scale
    detections[:, 5:] /= scale
    kept = detections[detections[:, 4] >= threshold]
    if len(kept) < len(detections):
        below = np.sort(detections[detections[:, 4] < threshold, 4])[::-1]
        logging.warning("SSDiff FaceCrop: %s found %d face(s) scoring %s, below confidence %s: lower confidence "
                        "(0: the detector's own, %s) to keep them", detector.name, len(below),
                        ", ".join(f"{score:.2f}" for score in below), threshold, detector.default_confidence)
    return faces_from_detections(kept)
