"""ArcFace embeddings of faces aligned to the FFHQ template, as SSDiff Face Crop gives them,
re-aligned to ArcFace's 112 px template first: what identity drift is measured on
(ssdiff_core.iteration.embedding_angle)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .alignment import FFHQ_TEMPLATE_512, warp_face
from .arrays import image_array, image_tensor

ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
"""InsightFace's five landmarks of an aligned 112 x 112 face, which ArcFace was trained on."""
ARCFACE_SIZE = 112


def arcface_affine(face_size: int) -> np.ndarray:
    """2 x 3 similarity from an FFHQ-aligned face of `face_size` px onto ArcFace's template."""
    # every landmark an inlier: the least-squares fit of all five (the two templates differ in shape)
    affine, _ = cv2.estimateAffinePartial2D(FFHQ_TEMPLATE_512 * (face_size / 512), ARCFACE_TEMPLATE_112,
                                            ransacReprojThreshold=ARCFACE_SIZE)
    return affine


def identity_embeddings(network: torch.nn.Module, faces: torch.Tensor) -> torch.Tensor:
    """B x 3 x S x S RGB in [0, 1], FFHQ-aligned -> B x D unit-length embeddings (float32, CPU)."""
    scale = math.hypot(*arcface_affine(faces.shape[-1])[:, 0])
    size = round(faces.shape[-1] * scale)  # area-resized to the template's scale first: a warp this small aliases
    affine = arcface_affine(size)
    crops = np.stack([warp_face(cv2.resize(image_array(face), (size, size), interpolation=cv2.INTER_AREA), affine,
                                ARCFACE_SIZE) for face in faces])
    parameter = next(network.parameters())
    batch = image_tensor(crops).contiguous().to(parameter.device, parameter.dtype) * 2 - 1
    with torch.no_grad():
        embeddings = network(batch).float().cpu()
    return torch.nn.functional.normalize(embeddings, dim=1)

