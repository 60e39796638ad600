"""One ancestral DDPM transition written on noise levels sigma = sqrt((1 - abar) / abar), so it
holds on any grid of the model's schedule (all 1000 steps, respaced, or a user's SIGMAS).

Names follow Ho et al. / Nichol & Dhariwal: abar = alpha-bar, beta = 1 - abar_t / abar_prev of the
(possibly respaced) transition, posterior variance beta_tilde = beta (1 - abar_prev) / (1 - abar_t).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Transition:
    """Scalars of the transition x_t -> x_{t-1} from noise level `sigma` to `sigma_prev`."""
    sigma: float
    sigma_prev: float
    beta: float
    posterior_mean_coef_x0: float
    posterior_mean_coef_xt: float
    log_beta: float
    log_posterior_variance_clipped: float

    @property
    def is_last(self) -> bool:
        return self.sigma_prev == 0.0


def _posterior_variance(sigma: float, sigma_prev: float) -> float:
    # beta * (1 - abar_prev) / (1 - abar_t), written so that no 1 - abar cancels.
    beta = (sigma ** 2 - sigma_prev ** 2) / (1 + sigma ** 2)
    return beta * (sigma_prev ** 2 / (1 + sigma_prev ** 2)) / (sigma ** 2 / (1 + sigma ** 2))


def transition(sigma: float, sigma_prev: float, sigma_above: float | None) -> Transition:
    """`sigma_above` is the grid's noise level before `sigma`; it sets the clipped posterior
    variance of the last step (which is 0 there), as guided-diffusion's clipped log does. A grid
    of one step has none above (guided-diffusion fails there): its variance is then beta, which
    draws no noise either, since the last step adds none.
    The posterior q(x_{t-1} | x_t, x0) is Ho et al. 2020, eq. 6-7, with abar = 1 / (1 + sigma^2)."""
    abar_prev = 1 / (1 + sigma_prev ** 2)
    one_minus_abar_t = sigma ** 2 / (1 + sigma ** 2)
    one_minus_abar_prev = sigma_prev ** 2 / (1 + sigma_prev ** 2)
    beta = (sigma ** 2 - sigma_prev ** 2) / (1 + sigma ** 2)
    alpha = 1 - beta
    posterior_variance = _posterior_variance(sigma, sigma_prev)
    if posterior_variance == 0.0:
        posterior_variance = beta if sigma_above is None else _posterior_variance(sigma_above, sigma)
    return Transition(
        sigma=sigma,
        sigma_prev=sigma_prev,
        beta=beta,
        posterior_mean_coef_x0=math.sqrt(abar_prev) * beta / one_minus_abar_t,
        posterior_mean_coef_xt=math.sqrt(alpha) * one_minus_abar_prev / one_minus_abar_t,
        log_beta=math.log(beta),
        log_posterior_variance_clipped=math.log(posterior_variance),
    )


def vp_from_k_diffusion(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """k-diffusion state x = x_t * sqrt(1 + sigma^2) -> variance-preserving x_t."""
    return x / math.sqrt(1 + sigma ** 2)


def k_diffusion_from_vp(x_t: torch.Tensor, sigma: float) -> torch.Tensor:
    return x_t * math.sqrt(1 + sigma ** 2)


def posterior_mean(step: Transition, x0: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    return step.posterior_mean_coef_x0 * x0 + step.posterior_mean_coef_xt * x_t


def learned_log_variance(step: Transition, variance_values: torch.Tensor) -> torch.Tensor:
    """Learned-range variance: v in the model's extra channels interpolates, in log space,
    between the clipped posterior variance (v = -1) and beta (v = 1); v is not clamped."""
    fraction = (variance_values + 1) / 2
    return fraction * step.log_beta + (1 - fraction) * step.log_posterior_variance_clipped


def fixed_log_variance(step: Transition, like: torch.Tensor) -> torch.Tensor:
    """For models without learned variance: the clipped posterior variance."""
    return torch.full_like(like, step.log_posterior_variance_clipped)
