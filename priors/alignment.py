"""Face alignment to the FFHQ template and paste-back, on H x W x C float images in [0, 1].

The maths follows FaceRestoreHelper's (facexlib): a similarity transform fitted to five
landmarks, a constant grey border, and an eroded, Gaussian-feathered square mask for pasting.
Written anew: the helper is stateful and loads two networks it may not need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
"""Eyes, nose tip, mouth corners (image-left first) of an aligned 512 px FFHQ face."""
BORDER_RGB = (132 / 255, 133 / 255, 135 / 255)
"""facexlib's border grey (135, 133, 132) in BGR."""


@dataclass(frozen=True)
class DetectedFace:
    """box x1, y1, x2, y2; detection score; landmarks 5 x 2 (x, y) in the photo."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))


@dataclass(frozen=True)
class AlignedFace:
    """Where a crop came from: the photo's batch index and the 2 x 3 photo -> crop affine."""
    image_index: int
    affine: np.ndarray
    face: DetectedFace


@dataclass(frozen=True)
class FaceInfo:
    """What FacePaste needs to put crops back: crop size, photo sizes and one entry per crop.
    `faces` is empty when no face was found; the crops are then the photos themselves."""
    crop_size: int
    image_sizes: tuple[tuple[int, int], ...]
    faces: tuple[AlignedFace, ...]


def faces_from_detections(detections: np.ndarray) -> list[DetectedFace]:
    """RetinaFace rows (x1, y1, x2, y2, score, 5 x (x, y)) -> DetectedFace, largest first."""
    faces = [DetectedFace(tuple(float(v) for v in row[:4]), float(row[4]),
                          np.asarray(row[5:15], dtype=np.float32).reshape(5, 2)) for row in detections]
    return sorted(faces, key=lambda face: face.area, reverse=True)


FaceSelection = Literal["largest", "all", "index"]


def select_faces(faces: list[DetectedFace], mode: FaceSelection, index: int = 0,
                 min_eye_distance: float = 0.0) -> list[DetectedFace]:
    """mode 'largest', 'all' or 'index' (into the faces ordered largest first), after dropping
    faces whose eyes are closer than `min_eye_distance` px."""
    kept = [face for face in faces if face.eye_distance >= min_eye_distance]
    if mode == "all":
        return kept
    if mode == "largest":
        return kept[:1]
    if mode == "index":
        return kept[index:index + 1]
    raise ValueError(f"face selection must be 'largest', 'all' or 'index', got '{mode}'")


def alignment_affine(landmarks: np.ndarray, crop_size: int) -> np.ndarray:
    """2 x 3 similarity mapping the photo onto the FFHQ template scaled to `crop_size`."""
    template = FFHQ_TEMPLATE_512 * (crop_size / 512)
    affine, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), template, method=cv2.LMEDS)
    if affine is None:
        raise ValueError("could not fit an alignment to the face's landmarks")
    return affine


def warp_face(image: np.ndarray, affine: np.ndarray, crop_size: int) -> np.ndarray:
    """Crops one aligned face (crop_size square) out of an H x W x 3 float image."""
    return cv2.warpAffine(image, affine, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB)


def letterbox(image: np.ndarray, crop_size: int) -> np.ndarray:
    """The whole photo scaled into a crop_size square on the border grey (for a photo without
    faces, so that the graph still runs)."""
    height, width = image.shape[:2]
    scale = crop_size / max(height, width)
    affine = np.array([[scale, 0, (crop_size - width * scale) / 2],
                       [0, scale, (crop_size - height * scale) / 2]], dtype=np.float32)
    return warp_face(image, affine, crop_size)


def paste_face(photo: np.ndarray, crop: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Blends a (restored) crop back into an H x W x C float photo through the inverse affine,
    with facexlib's soft square mask: eroded by 2 px, then eroded and blurred by 1/20 of the
    face's side so that no seam shows."""
    height, width = photo.shape[:2]
    inverse = cv2.invertAffineTransform(affine)
    warped = cv2.warpAffine(crop, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    if warped.ndim == 2:  # OpenCV drops a single channel
        warped = warped[..., None]
    inside = cv2.warpAffine(np.ones(crop.shape[:2], np.float32), inverse, (width, height),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = cv2.erode(inside, np.ones((2, 2), np.uint8))
    edge = int(np.sqrt(inside.sum())) // 20
    if edge > 0:
        soft = cv2.erode(inside, np.ones((2 * edge, 2 * edge), np.uint8))
        soft = cv2.GaussianBlur(soft, (2 * edge + 1, 2 * edge + 1), 0)
    else:
        soft = inside
    soft = soft[..., None]
    blended = photo.copy()
    channels = min(crop.shape[2], 3)
    blended[..., :channels] = (soft * inside[..., None] * warped[..., :channels]
                               + (1 - soft) * photo[..., :channels])
    return blended
