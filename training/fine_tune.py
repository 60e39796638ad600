"""The fine-tuning loop: a copy of a fast face restorer trained on (degraded, target) pairs, the
targets SSDiff restorations or pseudo-targets (Kuai et al., WACV 2025), so that the rest of an
archive is restored at the restorer's speed; the restorer given stays as it was. What trains and
on which loss is the architecture's recipe (training/recipes.py); for every recipe: Adam (betas
0.9, 0.99), the learning rate halved at 87.5 % and 95 % of the steps, an EMA of the weights,
random horizontal flips, as the released CodeFormer fine-tune trains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..models.autograd import autograd_copy
from ..models.face_restorers import FaceRestorer
from .losses import PerceptualLoss
from .objectives import CodeFormerObjective, PixelObjective
from .recipes import recipe_of

ADAM_BETAS = (0.9, 0.99)
LEARNING_RATE_DROPS = (0.875, 0.95)
"""The released schedule halves the rate at 35k and 38k of 40k iterations."""


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


def _trainable(network: torch.nn.Module, frozen: tuple[str, ...], only: tuple[str, ...] | None) -> list[torch.nn.Parameter]:
    parameters = []
    for name, parameter in network.named_parameters():
        top = name.split(".", 1)[0]
        train = top not in frozen and (only is None or top in only)
        parameter.requires_grad_(train)
        if train:
            parameters.append(parameter)
    return parameters


def fine_tune(restorer: FaceRestorer, degraded: torch.Tensor, targets: torch.Tensor, settings: FineTuneSettings,
              on_step: Callable[[int, float], None] | None = None,
              perceptual_loss: PerceptualLoss | None = None) -> FineTuneResult:
    """Trains a copy of `restorer` on pairs of B x 3 x S x S faces in [-1, 1] (S: its face_size).
    Deterministic on the CPU for a seed (batches and flips drawn from it). `on_step(step, loss)` runs after each
    step: it reports progress and may raise to cancel (nothing is kept then). `perceptual_loss`
    joins the pixel loss of the recipes that learn on pixels."""
    recipe = recipe_of(restorer.architecture)
    if perceptual_loss is not None and not recipe.takes_perceptual_loss:
        raise ValueError(f"perceptual_loss: {restorer.architecture} is fine-tuned on its codes, as the paper does, "
                         "not on pixels; disconnect perceptual_loss, or fine-tune a GFPGAN / RestoreFormer restorer")
    if degraded.shape != targets.shape:
        raise ValueError(f"got {degraded.shape[0]} degraded faces of {tuple(degraded.shape[-2:])} and "
                         f"{targets.shape[0]} targets of {tuple(targets.shape[-2:])}: give one target per face, "
                         "at the same size")
    with torch.inference_mode(False), torch.enable_grad():
        parameter = next(restorer.network.parameters())
        degraded = degraded.to(parameter.device, parameter.dtype).clone()
        targets = targets.to(parameter.device, parameter.dtype).clone()
        network = autograd_copy(restorer.network)
        transformer_only = settings.transformer_only and recipe.transformer is not None
        parameters = _trainable(network, recipe.frozen, recipe.transformer if transformer_only else None)
        if recipe.objective == "codes":
            objective = CodeFormerObjective(restorer.network, network, degraded, targets, transformer_only)
        else:
            if perceptual_loss is not None:
                lpips_network = autograd_copy(perceptual_loss.network).to(parameter.device, parameter.dtype)
                perceptual_loss = PerceptualLoss(lpips_network, perceptual_loss.weight)
            objective = PixelObjective(network, degraded, targets, perceptual_loss)
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
