"""The stage schedule: where in the noise schedule each guidance term acts.

Boundaries are fractions of the original 1000-step schedule, mapped to the noise level of each
step, so they hold for any step count or sigma grid. The released code's variant
(ssdiff_core.variant.RELEASED_CODE) counts absolute integer timesteps instead, compared exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .settings import setting


def timestep_of_sigma(sigma: float, discrete_sigmas: torch.Tensor) -> float:
    """Fractional DDPM index t of a noise level, interpolating log sigma between the model's
    discrete levels (`discrete_sigmas[t]`, ascending in t)."""
    log_sigmas = discrete_sigmas.double().log()
    log_sigma = math.log(sigma)
    upper = int(torch.searchsorted(log_sigmas, torch.tensor([log_sigma], dtype=torch.float64)))
    if upper == 0:
        return 0.0
    if upper >= len(log_sigmas):
        return float(len(log_sigmas) - 1)
    low, high = float(log_sigmas[upper - 1]), float(log_sigmas[upper])
    return upper - 1 + (log_sigma - low) / (high - low)


def snap_to_schedule(sigma: float, discrete_sigmas: torch.Tensor, rtol: float = 1e-5) -> float:
    """The schedule's own (float64) noise level when `sigma` is one of them up to float32
    rounding; else `sigma`. ComfyUI hands samplers float32 sigmas, too coarse for the posterior
    variance, whose beta is a small difference of two sigmas."""
    if sigma <= 0:
        return sigma
    index = int(torch.argmin((discrete_sigmas.double() - sigma).abs()))
    nearest = float(discrete_sigmas[index])
    return nearest if abs(nearest - sigma) <= rtol * nearest else sigma


def respaced_timesteps(steps: int, num_timesteps: int = 1000) -> list[int]:
    """`steps` timesteps spread evenly over 0..T-1, first and last included, descending (the
    respacing of guided-diffusion's `space_timesteps` for a single section)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be between 1 and {num_timesteps}, got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)}, reverse=True)


def respaced_sigmas(steps: int, discrete_sigmas: torch.Tensor) -> torch.Tensor:
    """The sampler's noise levels for `steps` respaced DDPM steps, ending with 0."""
    timesteps = respaced_timesteps(steps, len(discrete_sigmas))
    return torch.cat([discrete_sigmas[timesteps].float(), torch.zeros(1)])


@dataclass(frozen=True)
class RepeatWindow:
    """N guided steps at the same noise level while s_end * T < t < s_start * T (the paper's
    repeat window, both stages)."""
    repeats: int = setting(1, 1, 10, "N: guided steps at each noise level inside (s_end, s_start)")
    start: float = setting(1.0, 0.0, 1.0, "upper end of the repeat window, as a fraction of the schedule", 0.01,
                           name="s_start")
    end: float = setting(0.7, 0.0, 1.0, "lower end of the repeat window, as a fraction of the schedule", 0.01,
                         name="s_end")

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats (N) must be at least 1, got {self.repeats}")
        if not 0.0 <= self.end <= self.start <= 1.0:
            raise ValueError(f"need 0 <= s_end <= s_start <= 1 (fractions of the schedule), got "
                             f"s_start={self.start}, s_end={self.end}")

    def repeats_at(self, timestep: float, num_timesteps: int) -> int:
        inside = self.end * num_timesteps < timestep < self.start * num_timesteps
        return self.repeats if inside else 1


@dataclass(frozen=True)
class StepTime:
    """Where a step sits in the original schedule."""
    timestep: float
    num_timesteps: int
    integer_boundaries: bool = False
    """Boundaries rounded to whole timesteps (the released code's rule; MethodVariant says which)."""

    def after(self, fraction: float) -> bool:
        """Strictly noisier than `fraction` of the schedule (t > fraction * T)."""
        return self.timestep > self._boundary(fraction)

    def at_or_after(self, fraction: float) -> bool:
        return self.timestep >= self._boundary(fraction)

    def _boundary(self, fraction: float) -> float:
        boundary = fraction * self.num_timesteps
        return round(boundary) if self.integer_boundaries else boundary
