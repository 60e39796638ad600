"""Pseudo-targets from the face diffusion prior (Kuai et al., "Towards Unsupervised Blind Face
Restoration using Diffusion Prior", WACV 2025): the coarse restoration R, diffused to an
intermediate noise level, is sampled back with ancestral DDPM steps (learned variance), and while
the noise is high the sample's low-frequency band is replaced by that of R noised to the same
level (ILVR-style, Choi et al. 2021, eq. 4):

    x_{t-1} <- x_{t-1} - LP(x_{t-1}) + LP(q(R, t-1, c)),   c ~ N(0, I) drawn afresh,

with LP = up(down(.)) by the filter factor (ssdiff_core.lowpass). After the constraint ends the
steps are unconstrained. The result is a training target for a fast restorer.

Boundaries are fractions of the original schedule, as SSDiff's stages are: the paper's start at
150 and end at 90 of 250 respaced steps are 0.6 and 0.36. The released sampler noises R to the
level one step above the first step it takes (DifFace's off-by-one); the RELEASED_CODE variant keeps it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import ddpm
from .lowpass import low_frequencies
from .pixel_space import IdentityMap, PixelMap
from .schedule import RepeatWindow, StepTime, snap_to_schedule, timestep_of_sigma
from .variant import PAPER, MethodVariant

START = 0.6
CONSTRAINT_END = 0.36
FILTER_FACTOR = 8
"""The paper's settings for CodeFormer restorations (16 for its SwinIR's)."""


def diffused(image: torch.Tensor, sigma: float, noise: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0) in VP units at noise level sigma: sqrt(abar) x0 + sqrt(1 - abar) noise, with
    abar = 1 / (1 + sigma^2) (Ho et al. 2020, eq. 4)."""
    abar = 1 / (1 + sigma ** 2)
    return math.sqrt(abar) * image + math.sqrt(1 - abar) * noise


def replace_low_frequencies(sample: torch.Tensor, target: torch.Tensor, factor: int) -> torch.Tensor:
    """sample - LP(sample) + LP(target)."""
    return sample - low_frequencies(sample, factor) + low_frequencies(target, factor)


def start_sample(coarse: torch.Tensor, noise: torch.Tensor, first_sigma: float, noised_sigma: float) -> torch.Tensor:
    """The sampler's first state (k-diffusion units, x = x_t sqrt(1 + sigma^2)) at `first_sigma`:
    the coarse restoration diffused to `noised_sigma` (the same level, or the released code's
    level above it)."""
    return ddpm.k_diffusion_from_vp(diffused(coarse, noised_sigma, noise), first_sigma)


def partial_grid(sigmas: torch.Tensor, discrete_sigmas: torch.Tensor, start: float,
                 variant: MethodVariant = PAPER) -> tuple[torch.Tensor, float, float]:
    """The steps of a grid (descending, ending with 0) from its first level at or below `start`
    of the schedule; that first level, and the level the coarse restoration is noised to: the
    same, or, as the released sampler does, the grid's level above it (both on the schedule)."""
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must be a fraction of the schedule above 0 and at most 1, got {start}")
    levels = [snap_to_schedule(float(sigma), discrete_sigmas) for sigma in sigmas]
    boundary = start * len(discrete_sigmas)
    first = next((i for i, sigma in enumerate(levels[:-1])
                  if sigma > 0 and timestep_of_sigma(sigma, discrete_sigmas) <= boundary), len(levels) - 2)
    noised = levels[first - 1] if variant.pseudo_target_noised_above_first_step and first > 0 else levels[first]
    return sigmas[first:], levels[first], noised


@dataclass(frozen=True)
class PseudoTargetGuidance:
    """What the sampler's run needs: R in the model's [-1, 1] pixels (B or 1 x 3 x H x W), the
    constraint's end as a fraction of the schedule and the filter factor. No gradient: `scale`
    is 0, so the sampler's normalised correction leaves each ancestral step as it is."""
    coarse: torch.Tensor
    constraint_end: float = CONSTRAINT_END
    filter_factor: int = FILTER_FACTOR
    scale: float = 0.0
    repeat: RepeatWindow = field(default_factory=RepeatWindow)

    def __post_init__(self) -> None:
        if not 0.0 <= self.constraint_end <= 1.0:
            raise ValueError(f"constraint_end must be a fraction of the schedule from 0 to 1, got {self.constraint_end}")
        if self.filter_factor < 1:
            raise ValueError(f"filter_factor must be at least 1, got {self.filter_factor}")

    @property
    def sample_size(self) -> tuple[int, int]:
        return tuple(self.coarse.shape[-2:])

    def start(self, sample: torch.Tensor, pixel_map: PixelMap = IdentityMap()) -> "PseudoTargetRun":
        if pixel_map.scale != 1:
            raise ValueError("pseudo-targets need a pixel-space model (the face DDPM): the constraint works on "
                             "the sample's own pixels")
        if tuple(self.coarse.shape[-2:]) != tuple(sample.shape[-2:]):
            raise ValueError(f"coarse_restoration is {tuple(self.coarse.shape[-2:])} (H, W) but the sample is "
                             f"{tuple(sample.shape[-2:])}: give the restoration of the image being sampled")
        if self.coarse.shape[0] not in (1, sample.shape[0]):
            raise ValueError(f"coarse_restoration has a batch of {self.coarse.shape[0]}, the sample a batch of "
                             f"{sample.shape[0]}: give one per image or a single one for all")
        coarse = self.coarse.to(sample.device, sample.dtype).expand(sample.shape[0], *self.coarse.shape[1:])
        return PseudoTargetRun(self, coarse)


@dataclass
class PseudoTargetRun:
    spec: PseudoTargetGuidance
    coarse: torch.Tensor

    def gradient(self, x0h: torch.Tensor, when: StepTime) -> torch.Tensor:
        return torch.zeros_like(x0h)

    def step_time(self, timestep: float, num_timesteps: int) -> StepTime:
        return StepTime(timestep, num_timesteps)

    def correction_rule(self, repeat_index: int) -> tuple[bool, bool]:
        return True, True

    def after_step(self, x_prev: torch.Tensor, step: ddpm.Transition, when: StepTime, noise) -> torch.Tensor:
        """The constraint on the step's result x_{t-1} (VP units) while t >= constraint_end * T;
        never on the last step (the released code computes it there and drops it)."""
        if step.is_last or not when.at_or_after(self.spec.constraint_end):
            return x_prev
        target = diffused(self.coarse, step.sigma_prev, noise.draw(x_prev.device, x_prev.dtype))
        return replace_low_frequencies(x_prev, target, self.spec.filter_factor)
