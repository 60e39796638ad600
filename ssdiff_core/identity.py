"""Identity guidance towards other photos of the same person: a GuidanceTerm whose loss is the
cosine distance between a face-recognition embedding of the x0 estimate and the mean embedding of
reference faces, as in reference-based guided restoration (PGDiff, Yang et al., NeurIPS 2023,
Sec. 3.3: an identity loss from a recognition network on the x0 estimate). Like every term, it is
added to the stage's own loss and its gradient goes through the recognition network and the
pixel map only, never through the denoiser (the x0 estimate is a leaf, ssdiff_core/guidance.py)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .guidance import GuidanceTerm
from .schedule import StepTime
from .settings import setting

Embed = Callable[[torch.Tensor], torch.Tensor]
"""B x 3 x S x S faces in [-1, 1], FFHQ-aligned -> B x D embeddings, differentiable."""


def mean_identity(embeddings: torch.Tensor) -> torch.Tensor:
    """The references' identity: the mean of their unit-length embeddings (N x D), made unit-length."""
    return F.normalize(F.normalize(embeddings.float(), dim=1).mean(0), dim=0)


def identity_loss(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """sum_i 1 - cos(e_i, r): the cosine distance of each image's embedding (B x D) to the
    reference identity (D), summed over the batch as the stage's other losses are."""
    dtype = torch.promote_types(embeddings.dtype, torch.float32)
    return (1 - F.cosine_similarity(embeddings.to(dtype), reference.to(dtype)[None], dim=1)).sum()


@dataclass(frozen=True)
class IdentityTerm(GuidanceTerm):
    """Pulls the face towards the person of the reference faces.

    embed: the recognition network behind its re-alignment (priors/identity.py: identity_embedder);
    reference: the references' mean identity (D, unit length, `mean_identity`);
    face_size: (H, W) of the face inside the sample, which may be padded to the model's multiple."""
    embed: Embed
    reference: torch.Tensor
    face_size: tuple[int, int]
    weight: float = setting(2000.0, 0.0, 100000.0, "identity term: the face's ArcFace embedding towards the "
                                                   "reference faces' (1 - cosine), at every step; 0: off",
                            10.0, name="identity_weight")

    def start(self, sample: torch.Tensor) -> "IdentityTerm":
        return dataclasses.replace(self, reference=self.reference.to(sample.device).clone())

    def loss(self, x0: torch.Tensor, when: StepTime) -> torch.Tensor | None:
        if self.weight == 0:
            return None
        height, width = self.face_size
        return self.weight * identity_loss(self.embed(x0[..., :height, :width]), self.reference)
