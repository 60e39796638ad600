"""ArcFace embeddings of faces aligned to the FFHQ template, as SSDiff Face Crop gives them,
re-aligned to ArcFace's 112 px template first, differentiably: what identity drift is measured on
(ssdiff_core.iteration.embedding_angle) and what the identity guidance term steers by
(ssdiff_core.identity)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..models.autograd import autograd_copy
from ..ssdiff_core.identity import Embed, mean_identity
from .alignment import FFHQ_TEMPLATE_512

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


def warp(images: torch.Tensor, affine: np.ndarray, size: int) -> torch.Tensor:
    """B x C x H x W -> B x C x size x size through a 2 x 3 pixel affine (source -> destination,
    OpenCV's convention: pixel centres at integer coordinates), bilinear, zero outside; differentiable
    with respect to the images (cv2.warpAffine's sampling written with grid_sample)."""
    inverse = torch.as_tensor(cv2.invertAffineTransform(affine), dtype=images.dtype, device=images.device)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=images.dtype, device=images.device),
                            torch.arange(size, dtype=images.dtype, device=images.device), indexing="ij")
    source_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    source_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    height, width = images.shape[-2:]
    grid = torch.stack(((2 * source_x + 1) / width - 1, (2 * source_y + 1) / height - 1), dim=-1)
    return F.grid_sample(images, grid.expand(images.shape[0], size, size, 2), mode="bilinear",
                         padding_mode="zeros", align_corners=False)


def arcface_input(faces: torch.Tensor) -> torch.Tensor:
    """B x 3 x S x S FFHQ-aligned faces in [-1, 1] -> ArcFace's B x 3 x 112 x 112 input: area-resized
    to the template's scale first (a warp this small would alias), then warped onto the template;
    mid-grey outside the face. Differentiable."""
    face_size = faces.shape[-1]
    if faces.shape[-2] != face_size:
        raise ValueError(f"an aligned face is square; this one is {faces.shape[-1]} x {faces.shape[-2]} px: "
                         "give faces from SSDiff Face Crop")
    size = round(face_size * math.hypot(*arcface_affine(face_size)[:, 0]))
    return warp(F.interpolate(faces, size=(size, size), mode="area"), arcface_affine(size), ARCFACE_SIZE)


def _embed(network: torch.nn.Module, faces: torch.Tensor) -> torch.Tensor:
    """Faces in [-1, 1] -> unit-length float32 ArcFace embeddings, on the network's device."""
    parameter = next(network.parameters())
    return F.normalize(network(arcface_input(faces.to(parameter.device, parameter.dtype))).float(), dim=1)


def identity_embedder(network: torch.nn.Module) -> Embed:
    """The identity term's embedding: faces in [-1, 1] -> unit-length ArcFace embeddings, with a
    graph through a private copy of `network` (whose own tensors may be inference tensors)."""
    network = autograd_copy(network).requires_grad_(False).eval()
    return lambda faces: _embed(network, faces)


def identity_embeddings(network: torch.nn.Module, faces: torch.Tensor) -> torch.Tensor:
    """B x 3 x S x S RGB in [0, 1], FFHQ-aligned -> B x D unit-length embeddings (float32, CPU)."""
    with torch.no_grad():
        return _embed(network, faces * 2 - 1).cpu()


def reference_identity(network: torch.nn.Module, faces: torch.Tensor) -> torch.Tensor:
    """The identity of reference faces (B x 3 x S x S RGB in [0, 1], FFHQ-aligned): the mean of
    their embeddings, unit length (D, CPU)."""
    return mean_identity(identity_embeddings(network, faces))
