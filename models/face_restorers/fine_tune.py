"""Fine-tuning a fast face restorer on (degraded, target) pairs, the targets SSDiff restorations
or pseudo-targets (Kuai et al., WACV 2025), so that the rest of an archive is restored at the
restorer's speed. Works on a copy: the restorer given stays as it was.

CodeFormer is trained as the released fine-tune trains it: at fidelity w = 0, the quantizer, the
generator and the fusion blocks frozen; the target's codes are those the original network's own
encoder and quantizer give it; losses: the L2 between the encoder's features on the degraded
face and the codebook entries of the target's codes (weight 1.0), and the cross-entropy of the
transformer's code prediction against those codes (0.5); Adam (betas 0.9, 0.99), the learning
rate halved at 87.5 % and 95 % of the steps, an EMA of the weights, random horizontal flips.
`transformer_only` trains the transformer alone, reading each face's encoder features once
(faster; only the cross-entropy then has a gradient). Other restorers (GFPGAN, RestoreFormer) learn with
an L1 pixel loss, plus DT-BFR's 0.1 x LPIPS where a perceptual loss is given, their StyleGAN decoder
(GFPGAN) frozen.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..perceptual_loss import PerceptualLoss
from . import CODEFORMER, FaceRestorer
from .codeformer import code_features, code_logits, encode, nearest_codes

FEATURE_WEIGHT = 1.0
CODE_WEIGHT = 0.5
ADAM_BETAS = (0.9, 0.99)
LEARNING_RATE_DROPS = (0.875, 0.95)
"""The released schedule halves the rate at 35k and 38k of 40k iterations."""
CODEFORMER_FROZEN = ("quantize", "generator", "fuse_convs_dict")
GFPGAN_FROZEN = ("stylegan_decoder",)
TRAINED_PARTS = ("encoder_and_transformer", "transformer_only")
"""What of CodeFormer trains: as the released fine-tune, or `transformer_only`."""


@dataclass(frozen=True)
class FineTuneSettings:
    steps: int
    learning_rate: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    ema_decay: float = 0.995
    """0: no EMA, the last weights are kept."""
    transformer_only: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be at least 1, got {self.steps} and {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be from 0 to below 1, got {self.ema_decay}")


@dataclass(frozen=True)
class FineTuneResult:
    restorer: FaceRestorer
    losses: list[float]
    """The training loss of each step."""


def _autograd_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A copy of normal tensors: a loader may have built `network` under inference mode, whose
    tensors autograd cannot save for backward."""
    network = copy.deepcopy(network)
    for tensor in list(network.parameters()) + list(network.buffers()):
        tensor.data = tensor.data.clone()
    return network


def _trainable(network: torch.nn.Module, frozen: tuple[str, ...], only: tuple[str, ...] | None) -> list[torch.nn.Parameter]:
    parameters = []
    for name, parameter in network.named_parameters():
        top = name.split(".", 1)[0]
        train = top not in frozen and (only is None or top in only)
        parameter.requires_grad_(train)
        if train:
            parameters.append(parameter)
    return parameters


class _CodeFormerObjective:
    """The released fine-tune's losses; the targets' codes (and, training the transformer alone,
    the degraded faces' encoder features) worked out once."""

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
                features, _ = encode(self.original, _flipped(images[index:index + 1], flip))
                cache[index, flip] = nearest_codes(self.original, features) if codes else features
        return cache[index, flip]

    def loss(self, indices: torch.Tensor, flip: bool) -> torch.Tensor:
        codes = torch.cat([self._frozen(self.codes, self.targets, int(i), flip, codes=True) for i in indices])
        if self.transformer_only:
            features = torch.cat([self._frozen(self.features, self.degraded, int(i), flip, codes=False)
                                  for i in indices])
            return CODE_WEIGHT * F.cross_entropy(code_logits(self.network, features).permute(0, 2, 1), codes)
        features, _ = encode(self.network, _flipped(self.degraded[indices], flip))
        feature_loss = (code_features(self.network, codes).detach() - features).pow(2).mean()
        code_loss = F.cross_entropy(code_logits(self.network, features).permute(0, 2, 1), codes)
        return FEATURE_WEIGHT * feature_loss + CODE_WEIGHT * code_loss


class _PixelObjective:
    def __init__(self, network: torch.nn.Module, degraded: torch.Tensor, targets: torch.Tensor,
                 perceptual_loss: PerceptualLoss | None):
        self.network, self.degraded, self.targets = network, degraded, targets
        self.perceptual_loss = perceptual_loss

    def loss(self, indices: torch.Tensor, flip: bool) -> torch.Tensor:
        output = self.network(_flipped(self.degraded[indices], flip))
        output = output[0] if isinstance(output, (tuple, list)) else output
        target = _flipped(self.targets[indices], flip)
        loss = F.l1_loss(output, target)
        return loss if self.perceptual_loss is None else loss + self.perceptual_loss(output, target)


def _flipped(images: torch.Tensor, flip: bool) -> torch.Tensor:
    return images.flip(-1) if flip else images


def fine_tune(restorer: FaceRestorer, degraded: torch.Tensor, targets: torch.Tensor, settings: FineTuneSettings,
              on_step: Callable[[int, float], None] | None = None,
              perceptual_loss: PerceptualLoss | None = None) -> FineTuneResult:
    """Trains a copy of `restorer` on pairs of B x 3 x S x S faces in [-1, 1] (S: its face_size).
    Deterministic on the CPU for a seed (batches and flips drawn from it). `on_step(step, loss)` runs after each
    step: it reports progress and may raise to cancel (nothing is kept then). `perceptual_loss`
    joins the pixel loss of restorers other than CodeFormer."""
    if perceptual_loss is not None and restorer.architecture == CODEFORMER:
        raise ValueError("perceptual_loss: CodeFormer is fine-tuned on its codes, as the paper does, not on "
                         "pixels; disconnect perceptual_loss, or fine-tune a GFPGAN / RestoreFormer restorer")
    if degraded.shape != targets.shape:
        raise ValueError(f"got {degraded.shape[0]} degraded faces of {tuple(degraded.shape[-2:])} and "
                         f"{targets.shape[0]} targets of {tuple(targets.shape[-2:])}: give one target per face, "
                         "at the same size")
    with torch.inference_mode(False), torch.enable_grad():
        parameter = next(restorer.network.parameters())
        degraded = degraded.to(parameter.device, parameter.dtype).clone()
        targets = targets.to(parameter.device, parameter.dtype).clone()
        network = _autograd_copy(restorer.network)
        if restorer.architecture == CODEFORMER:
            only = ("position_emb", "feat_emb", "ft_layers", "idx_pred_layer") if settings.transformer_only else None
            parameters = _trainable(network, CODEFORMER_FROZEN, only)
            objective = _CodeFormerObjective(restorer.network, network, degraded, targets, settings.transformer_only)
        else:
            parameters = _trainable(network, GFPGAN_FROZEN, None)
            if perceptual_loss is not None:
                lpips_network = _autograd_copy(perceptual_loss.network).to(parameter.device, parameter.dtype)
                perceptual_loss = PerceptualLoss(lpips_network, perceptual_loss.weight)
            objective = _PixelObjective(network, degraded, targets, perceptual_loss)
        optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate, betas=ADAM_BETAS)
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, sorted({max(1, round(fraction * settings.steps)) for fraction in LEARNING_RATE_DROPS}), 0.5)
        average = (torch.optim.swa_utils.AveragedModel(network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
            settings.ema_decay)) if settings.ema_decay else None)
        generator = torch.Generator().manual_seed(settings.seed)
        network.train()
        losses = []
        for step in range(settings.steps):
            indices = torch.randint(len(degraded), (min(settings.batch_size, len(degraded)),), generator=generator)
            flip = bool(torch.randint(2, (1,), generator=generator))
            loss = objective.loss(indices.to(degraded.device), flip)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if average is not None:
                average.update_parameters(network)
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
        if average is not None:
            network.load_state_dict(average.module.state_dict())
        network.eval().requires_grad_(False)
    return FineTuneResult(FaceRestorer(network, restorer.architecture), losses)
