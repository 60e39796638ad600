"""A restored face in its photo's tone: its lightness and detail kept, its colour statistics
(CIELAB a*, b*: mean and spread) taken from the photo where the face sits, so that a grayscale
photo gets a gray face and a sepia photo a sepia one; and whether a photo is monochrome or tinted,
measured from the photo itself (its colours keep to one hue). H x W x 3 float RGB in [0, 1] (numpy,
for OpenCV's Lab)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Tone = Literal["auto", "photo", "restored"]
TONES: tuple[Tone, ...] = ("auto", "photo", "restored")

MONOCHROME_SPREAD = 2.5
"""A photo is monochrome or tinted when its colours keep to one hue: when the (a*, b*) of its
pixels of mid lightness (L* 5 to 95) lie within this many CIELAB units (root mean square) of one
line through the neutral point, whatever their saturation along it. Measured
(tests/priors/test_tone.py): a grayscale photo 0.0, scikit-image's astronaut toned with the classic
sepia matrix 1.0, the pack's aged sample 1.6; colour photographs 3.6 and more (scikit-image's
chelsea 3.6, rocket 3.7, coffee 7.7, astronaut 10.2)."""
MAX_MEASURED_PIXELS = 1 << 20
"""Larger photos are measured on an even grid of about this many pixels."""


@dataclass(frozen=True)
class ChromaStatistics:
    mean: np.ndarray
    """a*, b* means."""
    std: np.ndarray
    """a*, b* standard deviations."""


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3], dtype=np.float32).clip(0, 1), cv2.COLOR_RGB2Lab)


def _measured(rgb: np.ndarray) -> np.ndarray:
    """The photo's pixels, thinned to about MAX_MEASURED_PIXELS on an even grid."""
    stride = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / MAX_MEASURED_PIXELS))))
    return rgb[::stride, ::stride]


def hue_spread(photo: np.ndarray) -> float:
    """How far the photo's colours stray from one hue: the root mean square distance of the
    (a*, b*) of its pixels of mid lightness from the line through the neutral point that fits them
    best (the square root of the smaller eigenvalue of their second-moment matrix), CIELAB units."""
    lab = _lab(_measured(photo)).reshape(-1, 3)
    chroma = lab[(lab[:, 0] > 5) & (lab[:, 0] < 95), 1:].astype(np.float64)
    if len(chroma) < 16:
        return 0.0
    return float(np.sqrt(max(np.linalg.eigvalsh(chroma.T @ chroma / len(chroma))[0], 0.0)))


def is_monochrome_or_tinted(photo: np.ndarray) -> bool:
    return hue_spread(photo) < MONOCHROME_SPREAD


def uses_photo_tone(tone: Tone, photo: np.ndarray) -> bool:
    """Whether a face pasted into `photo` takes the photo's tone under the `tone` setting."""
    if tone not in TONES:
        raise ValueError(f"tone must be one of {', '.join(TONES)}, got '{tone}'")
    return tone == "photo" or (tone == "auto" and is_monochrome_or_tinted(photo))


def chroma_statistics(rgb: np.ndarray, weights: np.ndarray | None = None) -> ChromaStatistics:
    """Weighted mean and standard deviation of a* and b* (weights: H x W, e.g. where the face is)."""
    return _chroma_statistics(_lab(rgb), weights)


def _chroma_statistics(lab: np.ndarray, weights: np.ndarray | None) -> ChromaStatistics:
    chroma = lab[..., 1:].reshape(-1, 2).astype(np.float64)
    w = np.ones(len(chroma)) if weights is None else weights.reshape(-1).astype(np.float64)
    if w.sum() <= 0:
        raise ValueError("no pixel to measure the colour on")
    mean = (chroma * w[:, None]).sum(0) / w.sum()
    std = np.sqrt(((chroma - mean) ** 2 * w[:, None]).sum(0) / w.sum())
    return ChromaStatistics(mean, std)


def in_tone(face: np.ndarray, target: ChromaStatistics) -> np.ndarray:
    """The face with its L* as it is and its a*, b* moved to `target`'s mean and spread (Reinhard
    et al.'s colour transfer on the chroma channels alone)."""
    lab = _lab(face)
    own = _chroma_statistics(lab, None)
    scale = target.std / np.maximum(own.std, 1e-6)
    lab[..., 1:] = ((lab[..., 1:] - own.mean) * scale + target.mean).astype(np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB).clip(0, 1)
    return rgb.astype(face.dtype, copy=False)


def in_photo_tone(face: np.ndarray, photo: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The face (S x S x 3, aligned by `affine` from `photo`) in the tone of the photo under its
    crop square: the photo warped into the crop as Face Crop warped it, its pixels inside the
    photo measured."""
    size = (face.shape[1], face.shape[0])
    rgb = np.ascontiguousarray(photo[..., :3], dtype=np.float32)
    under = cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(np.ones(rgb.shape[:2], np.float32), affine, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    return in_tone(face, chroma_statistics(under, inside > 0.99))
