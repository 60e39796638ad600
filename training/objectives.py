"""A training step's loss for each recipe (training/recipes.py), on faces drawn by index and
flipped or not."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.face_restorers.codeformer import code_features, code_logits, encode, nearest_codes
from .losses import PerceptualLoss

FEATURE_WEIGHT = 1.0
"""The released CodeFormer fine-tune's weight of the encoder-feature L2."""
CODE_WEIGHT = 0.5
"""... and of the code cross-entropy."""


def flipped(images: torch.Tensor, flip: bool) -> torch.Tensor:
    return images.flip(-1) if flip else images


class CodeFormerObjective:
    """The released fine-tune's losses: the L2 between the encoder's features on the degraded
    face and the codebook entries of the target's codes, and the cross-entropy of the
    transformer's code prediction against those codes. The targets' codes are those the original
    network's own encoder and quantizer give (and, training the transformer alone, the degraded
    faces' encoder features), each worked out the first time a face is drawn."""

    def __init__(self, original: torch.nn.Module, network: torch.nn.Module, degraded: torch.Tensor,
                 targets: torch.Tensor, transformer_only: bool):
        self.original, self.network, self.transformer_only = original, network, transformer_only
        self.degraded, self.targets = degraded, targets
        self.codes: dict[tuple[int, bool], torch.Tensor] = {}
        self.features: dict[tuple[int, bool], torch.Tensor] = {}

    def _frozen(self, cache: dict, images: torch.Tensor, index: int, flip: bool, codes: bool) -> torch.Tensor:
        """What the frozen original network gives a face, worked out the first time it is drawn."""
        if (index, flip) not in cache:
            with torch.no_grad():
                features, _ = encode(self.original, flipped(images[index:index + 1], flip))
                cache[index, flip] = nearest_codes(self.original, features) if codes else features
        return cache[index, flip]

    def loss(self, indices: torch.Tensor, flip: bool) -> torch.Tensor:
        codes = torch.cat([self._frozen(self.codes, self.targets, int(i), flip, codes=True) for i in indices])
        if self.transformer_only:
            features = torch.cat([self._frozen(self.features, self.degraded, int(i), flip, codes=False)
                                  for i in indices])
            return CODE_WEIGHT * F.cross_entropy(code_logits(self.network, features).permute(0, 2, 1), codes)
        features, _ = encode(self.network, flipped(self.degraded[indices], flip))
        feature_loss = (code_features(self.network, codes).detach() - features).pow(2).mean()
        code_loss = F.cross_entropy(code_logits(self.network, features).permute(0, 2, 1), codes)
        return FEATURE_WEIGHT * feature_loss + CODE_WEIGHT * code_loss


class PixelObjective:
    """L1 between the restored and the target faces, plus the perceptual loss where one is given."""

    def __init__(self, network: torch.nn.Module, degraded: torch.Tensor, targets: torch.Tensor,
                 perceptual_loss: PerceptualLoss | None):
        self.network, self.degraded, self.targets = network, degraded, targets
        self.perceptual_loss = perceptual_loss

    def loss(self, indices: torch.Tensor, flip: bool) -> torch.Tensor:
        output = self.network(flipped(self.degraded[indices], flip))
        output = output[0] if isinstance(output, (tuple, list)) else output
        target = flipped(self.targets[indices], flip)
        loss = F.l1_loss(output, target)
        return loss if self.perceptual_loss is None else loss + self.perceptual_loss(output, target)
