"""The pseudo-target sampler, step by step against its formula written out here (ancestral DDPM
steps, then the low-frequency replacement while t >= constraint_end * T), on a stand-in model
whose x0 estimate is known; the start and the grid at any step count."""
from __future__ import annotations

import math

import pytest
import torch

from comfyui_ssdiff.ssdiff_core import ddpm
from comfyui_ssdiff.ssdiff_core.lowpass import resize_matrix
from comfyui_ssdiff.ssdiff_core.pseudo_targets import PseudoTargetGuidance, partial_grid, start_sample
from comfyui_ssdiff.ssdiff_core.variant import RELEASED_CODE
from comfyui_ssdiff.ssdiff_core.sampler import ItemNoise, sample_ssdiff
from comfyui_ssdiff.ssdiff_core.schedule import respaced_sigmas, respaced_timesteps

BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
ABAR = torch.cumprod(1 - BETAS, 0)
SIGMAS = ((1 - ABAR) / ABAR).sqrt()


def shrinking_model(x: torch.Tensor, sigma: torch.Tensor, **_) -> torch.Tensor:
    """A stand-in denoiser: x0 = the VP state x_t scaled by 0.9 (no learned variance)."""
    return 0.9 * x / (1 + sigma[:, None, None, None] ** 2).sqrt()


def lowpass_by_hand(image: torch.Tensor, factor: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    down_h, down_w = resize_matrix(height, height // factor), resize_matrix(width, width // factor)
    up_h, up_w = resize_matrix(height // factor, height), resize_matrix(width // factor, width)
    return (up_h @ down_h).float() @ image @ (up_w @ down_w).float().T


def test_every_step_is_the_ancestral_step_then_the_constraint_while_the_noise_is_high():
    torch.manual_seed(0)
    coarse = torch.rand(2, 3, 32, 24) * 2 - 1
    sigmas, first, noised = partial_grid(respaced_sigmas(20, SIGMAS), SIGMAS, start=0.6)
    guidance = PseudoTargetGuidance(coarse, constraint_end=0.36, filter_factor=4)
    x = start_sample(coarse, ItemNoise(7, tuple(coarse.shape)).draw(), first, noised)
    records = []
    sample_ssdiff(shrinking_model, x, sigmas, {"seed": 7}, callback=lambda info: records.append(info["ssdiff"]),
                  guidance=guidance, discrete_sigmas=SIGMAS)

    noise = ItemNoise(7, tuple(coarse.shape), skip=1)
    levels = [float(SIGMAS[t]) for t in respaced_timesteps(20) if t <= 600] + [0.0]
    x_t = ddpm.vp_from_k_diffusion(x, levels[0])
    constrained = 0
    for i, record in enumerate(records):
        sigma, sigma_prev = levels[i], levels[i + 1]
        abar, abar_prev = 1 / (1 + sigma ** 2), 1 / (1 + sigma_prev ** 2)
        beta = 1 - abar / abar_prev
        x0 = (0.9 * x_t).clamp(-1, 1)
        mean = (math.sqrt(abar_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - abar_prev) * x_t) / (1 - abar)
        variance = beta * (1 - abar_prev) / (1 - abar) if sigma_prev else 0.0
        z = noise.draw()
        x_prev = mean + math.sqrt(variance) * z
        timestep = int(torch.argmin((SIGMAS - sigma).abs()))
        if sigma_prev and timestep >= 360:
            target = math.sqrt(abar_prev) * coarse + math.sqrt(1 - abar_prev) * noise.draw()
            x_prev = x_prev - lowpass_by_hand(x_prev, 4) + lowpass_by_hand(target, 4)
            constrained += 1
        assert torch.allclose(record.x_prev, x_prev, atol=1e-5), f"step {i} (t = {timestep})"
        x_t = x_prev
    assert len(records) == 12 and constrained == 5


@pytest.mark.parametrize("steps, first_timestep", [(250, 598), (100, 595), (20, 578), (1, None)])
def test_the_start_is_the_first_level_at_or_below_its_fraction_at_any_step_count(steps, first_timestep):
    sigmas, first, noised = partial_grid(respaced_sigmas(steps, SIGMAS), SIGMAS, start=0.6)
    if first_timestep is None:  # one step: the whole schedule in one go
        assert first == pytest.approx(float(SIGMAS[999])) and len(sigmas) == 2
        return
    assert first == float(SIGMAS[first_timestep]) == noised
    assert sigmas[0] == pytest.approx(first, rel=1e-6) and sigmas[-1] == 0
    _, _, released = partial_grid(respaced_sigmas(steps, SIGMAS), SIGMAS, start=0.6, variant=RELEASED_CODE)
    above = respaced_timesteps(steps)[respaced_timesteps(steps).index(first_timestep) - 1]
    assert released == float(SIGMAS[above])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="start must be a fraction"):
        partial_grid(respaced_sigmas(10, SIGMAS), SIGMAS, start=0.0)
    with pytest.raises(ValueError, match="constraint_end"):
        PseudoTargetGuidance(torch.zeros(1, 3, 8, 8), constraint_end=1.5)
    with pytest.raises(ValueError, match="coarse_restoration is"):
        PseudoTargetGuidance(torch.zeros(1, 3, 8, 8)).start(torch.zeros(1, 3, 16, 16))
