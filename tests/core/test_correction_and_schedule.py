"""The normalised guidance step, the DDPM transition on noise levels, the stage schedule, and
both guidance stages on tiny tensors (no model)."""
from __future__ import annotations

import math

import pytest
import torch

from comfyui_ssdiff.ssdiff_core import ddpm
from comfyui_ssdiff.ssdiff_core.correction import apply_normalised_correction, normalised_step_coefficients
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from comfyui_ssdiff.ssdiff_core.losses import adain_to_face_colour, face_colour_loss, grayscale
from comfyui_ssdiff.ssdiff_core.masks import selective_masks
from comfyui_ssdiff.ssdiff_core.schedule import (RepeatWindow, StepTime, respaced_sigmas, respaced_timesteps,
                                  timestep_of_sigma)
from comfyui_ssdiff.ssdiff_core.variant import RELEASED_CODE, variant_of

D = torch.float64
BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=D)
ABAR = torch.cumprod(1 - BETAS, 0)
SIGMAS = ((1 - ABAR) / ABAR).sqrt()
RESPACED_10 = [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def uniform(*shape, seed=0, low=-0.5, high=0.5):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D) * (high - low) + low


# --- normalised correction ------------------------------------------------------------------

def test_correction_by_hand():
    x_t = torch.tensor([3.0, 4.0], dtype=D).reshape(1, 1, 1, 2)
    x_prev = torch.zeros_like(x_t)
    gradient = torch.tensor([0.0, 2.0], dtype=D).reshape(1, 1, 1, 2)
    corrected, k = apply_normalised_correction(x_t, x_prev, gradient, 0.1)
    # k = 0.1 * ||(3, 4)|| / ||(0, 2)|| = 0.1 * 5 / 2
    assert k.flatten().tolist() == pytest.approx([0.25])
    assert corrected.flatten().tolist() == pytest.approx([0.0, -0.5])


def norms(x: torch.Tensor, dims) -> torch.Tensor:
    return x.square().sum(dim=dims).sqrt()


def test_correction_per_image_and_channel_moves_by_scale_times_the_step():
    x_t, x_unguided, gradient = randn(2, 3, 6, 7, seed=1), randn(2, 3, 6, 7, seed=2), randn(2, 3, 6, 7, seed=3)
    gradient[1, 2] *= 50  # very different gradient sizes must not matter
    corrected, k = apply_normalised_correction(x_t, x_unguided, gradient, 0.0035)
    assert k.shape == (2, 3, 1, 1)
    moved = norms(corrected - x_unguided, (2, 3))
    torch.testing.assert_close(moved, 0.0035 * norms(x_t - x_unguided, (2, 3)))
    torch.testing.assert_close(corrected, x_unguided - k * gradient)
    assert (k > 0).all()


def test_correction_with_one_norm_over_the_batch_per_channel():
    x_t, x_unguided, gradient = randn(2, 3, 6, 7, seed=4), randn(2, 3, 6, 7, seed=5), randn(2, 3, 6, 7, seed=6)
    corrected, k = apply_normalised_correction(x_t, x_unguided, gradient, 0.5, per_image=False)
    assert k.shape == (1, 3, 1, 1)
    torch.testing.assert_close(norms(corrected - x_unguided, (0, 2, 3)), 0.5 * norms(x_t - x_unguided, (0, 2, 3)))
    # not per image: each image alone no longer moves by exactly its own step
    per_image = norms(corrected - x_unguided, (2, 3))
    assert not torch.allclose(per_image, 0.5 * norms(x_t - x_unguided, (2, 3)), rtol=1e-3)


def test_correction_with_one_norm_over_the_channels():
    x_t, x_unguided, gradient = randn(2, 3, 6, 7, seed=7), randn(2, 3, 6, 7, seed=8), randn(2, 3, 6, 7, seed=9)
    corrected, k = apply_normalised_correction(x_t, x_unguided, gradient, 0.2, per_channel=False)
    assert k.shape == (2, 1, 1, 1)
    torch.testing.assert_close(norms(corrected - x_unguided, (1, 2, 3)), 0.2 * norms(x_t - x_unguided, (1, 2, 3)))
    _, k_both = apply_normalised_correction(x_t, x_unguided, gradient, 0.2, per_image=False, per_channel=False)
    assert k_both.shape == (1, 1, 1, 1)
    expected = 0.2 * norms(x_t - x_unguided, (0, 1, 2, 3)) / norms(gradient, (0, 1, 2, 3))
    torch.testing.assert_close(k_both.flatten(), expected.flatten())


def test_a_zero_gradient_channel_gets_no_correction_and_no_nan():
    x_t, x_unguided, gradient = randn(2, 3, 5, 4, seed=10), randn(2, 3, 5, 4, seed=11), randn(2, 3, 5, 4, seed=12)
    gradient[:, 1] = 0
    gradient[1, 0] = 0
    corrected, k = apply_normalised_correction(x_t, x_unguided, gradient, 0.1)
    assert torch.isfinite(corrected).all() and torch.isfinite(k).all()
    assert (k[:, 1] == 0).all() and k[1, 0] == 0 and k[0, 0] > 0 and (k[:, 2] > 0).all()
    assert torch.equal(corrected[:, 1], x_unguided[:, 1])
    assert torch.equal(corrected[1, 0], x_unguided[1, 0])
    for per_image in (True, False):
        for per_channel in (True, False):
            out, k = apply_normalised_correction(x_t, x_unguided, torch.zeros_like(gradient), 0.1,
                                                 per_image, per_channel)
            assert torch.equal(out, x_unguided) and (k == 0).all()


def test_zero_step_gives_no_correction():
    x = randn(1, 3, 4, 4, seed=13)
    k = normalised_step_coefficients(torch.zeros_like(x), randn(1, 3, 4, 4, seed=14), 0.1)
    assert (k == 0).all()


def test_a_batch_of_two_steps_like_two_batches_of_one():
    x_t, x_unguided, gradient = randn(2, 3, 6, 7, seed=15), randn(2, 3, 6, 7, seed=16), randn(2, 3, 6, 7, seed=17)
    gradient[0] *= 10
    together, _ = apply_normalised_correction(x_t, x_unguided, gradient, 0.3)
    alone = torch.cat([apply_normalised_correction(x_t[i:i + 1], x_unguided[i:i + 1], gradient[i:i + 1], 0.3)[0]
                       for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-14)
    batch_norm, _ = apply_normalised_correction(x_t, x_unguided, gradient, 0.3, per_image=False)
    assert not torch.allclose(batch_norm, alone)


# --- DDPM transition --------------------------------------------------------------------------

def closed_forms(abar: torch.Tensor) -> dict[str, torch.Tensor]:
    """guided-diffusion's GaussianDiffusion quantities for an ascending abar sequence."""
    abar_prev = torch.cat([torch.ones(1, dtype=D), abar[:-1]])
    betas = 1 - abar / abar_prev
    variance = betas * (1 - abar_prev) / (1 - abar)
    return {
        "beta": betas,
        "coef_x0": betas * abar_prev.sqrt() / (1 - abar),
        "coef_xt": (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar),
        "log_variance_clipped": torch.cat([variance[1:2], variance[1:]]).log(),
    }


def check_transition(step: ddpm.Transition, forms: dict, i: int) -> None:
    assert step.beta == pytest.approx(float(forms["beta"][i]), rel=1e-9)
    assert step.log_beta == pytest.approx(math.log(float(forms["beta"][i])), rel=1e-9)
    assert step.posterior_mean_coef_x0 == pytest.approx(float(forms["coef_x0"][i]), rel=1e-9)
    assert step.posterior_mean_coef_xt == pytest.approx(float(forms["coef_xt"][i]), rel=1e-9)
    assert step.log_posterior_variance_clipped == pytest.approx(float(forms["log_variance_clipped"][i]), rel=1e-9)


@pytest.mark.parametrize("t", [999, 650, 400, 2, 1, 0])
def test_transition_on_the_full_grid(t):
    forms = closed_forms(ABAR)
    sigma_prev = float(SIGMAS[t - 1]) if t > 0 else 0.0
    sigma_above = float(SIGMAS[t + 1]) if t < 999 else None
    step = ddpm.transition(float(SIGMAS[t]), sigma_prev, sigma_above)
    check_transition(step, forms, t)
    assert step.beta == pytest.approx(float(BETAS[t]), rel=1e-9)
    assert step.is_last == (t == 0)


def test_last_step_takes_the_variance_of_the_step_above():
    step = ddpm.transition(float(SIGMAS[0]), 0.0, float(SIGMAS[1]))
    # posterior variance of t = 1: beta_1 (1 - abar_0) / (1 - abar_1)
    expected = float(BETAS[1] * (1 - ABAR[0]) / (1 - ABAR[1]))
    assert step.log_posterior_variance_clipped == pytest.approx(math.log(expected), rel=1e-9)
    assert step.posterior_mean_coef_x0 == pytest.approx(1.0, rel=1e-9)
    assert step.posterior_mean_coef_xt == pytest.approx(0.0, abs=1e-12)


def test_a_single_step_from_the_top_of_the_schedule_takes_beta_as_its_variance():
    # One step from sigma_max to 0 has no level above it; the last step adds no noise anyway.
    step = ddpm.transition(float(SIGMAS[999]), 0.0, None)
    assert step.is_last and step.log_posterior_variance_clipped == pytest.approx(step.log_beta)
    assert step.posterior_mean_coef_x0 == pytest.approx(math.sqrt(1.0) * step.beta / float(1 - ABAR[999]))


@pytest.mark.parametrize("i", range(10))
def test_transition_on_a_respaced_grid(i):
    kept = RESPACED_10[::-1]  # ascending
    forms = closed_forms(ABAR[kept])  # beta' = 1 - abar_t / abar_prev of the kept steps
    j = len(kept) - 1 - i  # position of step i of the descending sampler in the ascending list
    sigma = float(SIGMAS[kept[j]])
    sigma_prev = float(SIGMAS[kept[j - 1]]) if j > 0 else 0.0
    sigma_above = float(SIGMAS[kept[j + 1]]) if j + 1 < len(kept) else None
    check_transition(ddpm.transition(sigma, sigma_prev, sigma_above), forms, j)


def test_posterior_mean_of_a_noiseless_sample_is_the_scaled_x0():
    x0 = uniform(1, 3, 2, 2, seed=1)
    for t, t_prev in [(999, 888), (400, 399), (111, 0)]:
        step = ddpm.transition(float(SIGMAS[t]), float(SIGMAS[t_prev]), None)
        mean = ddpm.posterior_mean(step, x0, ABAR[t].sqrt() * x0)
        torch.testing.assert_close(mean, ABAR[t_prev].sqrt() * x0)


def test_learned_log_variance_interpolates_unclamped():
    step = ddpm.Transition(sigma=1.0, sigma_prev=0.5, beta=math.exp(-2), posterior_mean_coef_x0=0.0,
                           posterior_mean_coef_xt=0.0, log_beta=-2.0, log_posterior_variance_clipped=-6.0)
    v = torch.tensor([-1.0, 0.0, 1.0, 1.5, -2.0], dtype=D)
    torch.testing.assert_close(ddpm.learned_log_variance(step, v),
                               torch.tensor([-6.0, -4.0, -2.0, -1.0, -8.0], dtype=D))
    torch.testing.assert_close(ddpm.fixed_log_variance(step, torch.zeros(2, 3)), torch.full((2, 3), -6.0))


def test_k_diffusion_scaling():
    x = uniform(1, 3, 2, 2, seed=2)
    torch.testing.assert_close(ddpm.vp_from_k_diffusion(x, math.sqrt(3)), x / 2)
    torch.testing.assert_close(ddpm.k_diffusion_from_vp(x, math.sqrt(3)), x * 2)


# --- schedule -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sigmas", [SIGMAS, SIGMAS.float()], ids=["float64", "float32"])
def test_timestep_of_a_discrete_sigma_is_its_index(sigmas):
    for t in [0, 1, 2, 399, 400, 401, 650, 998, 999]:
        assert timestep_of_sigma(float(sigmas[t]), sigmas) == float(t)


def test_timestep_of_sigma_interpolates_log_sigma():
    between = math.sqrt(float(SIGMAS[400]) * float(SIGMAS[401]))  # log-midpoint
    assert timestep_of_sigma(between, SIGMAS) == pytest.approx(400.5, abs=1e-9)
    quarter = math.exp(0.75 * math.log(SIGMAS[10]) + 0.25 * math.log(SIGMAS[11]))
    assert timestep_of_sigma(quarter, SIGMAS) == pytest.approx(10.25, abs=1e-9)
    assert timestep_of_sigma(float(SIGMAS[0]) / 2, SIGMAS) == 0.0
    assert timestep_of_sigma(float(SIGMAS[999]) * 2, SIGMAS) == 999.0


def test_respaced_timesteps():
    assert respaced_timesteps(1000) == list(range(999, -1, -1))
    ten = respaced_timesteps(10)
    assert ten == RESPACED_10
    assert len(set(ten)) == 10 and ten[0] == 999 and ten[-1] == 0
    assert respaced_timesteps(1) == [999]
    for steps in (0, 1001):
        with pytest.raises(ValueError):
            respaced_timesteps(steps)


def test_respaced_sigmas_end_with_zero():
    sigmas = respaced_sigmas(10, SIGMAS)
    assert sigmas.shape == (11,) and sigmas[-1] == 0
    torch.testing.assert_close(sigmas[:-1], SIGMAS[RESPACED_10].float())
    assert (sigmas[:-1] > sigmas[1:]).all()


def test_repeat_window_validation():
    with pytest.raises(ValueError):
        RepeatWindow(repeats=0)
    with pytest.raises(ValueError):
        RepeatWindow(repeats=2, start=0.5, end=0.7)
    with pytest.raises(ValueError):
        RepeatWindow(repeats=2, start=1.2, end=0.7)
    with pytest.raises(ValueError):
        RepeatWindow(repeats=2, start=0.5, end=-0.1)
    RepeatWindow(repeats=2, start=0.7, end=0.7)  # an empty window is allowed


def test_repeat_window_is_strict_at_both_ends():
    window = RepeatWindow(repeats=3, start=1.0, end=0.7)
    assert [window.repeats_at(t, 1000) for t in (650, 700, 700.5, 850, 999, 1000)] == [1, 1, 3, 3, 3, 1]
    assert RepeatWindow().repeats_at(850, 1000) == 1


def test_step_time_fractional_boundaries():
    at = StepTime(400.0, 1000, False)
    assert at.at_or_after(0.4) and not at.after(0.4)
    assert not StepTime(399.9, 1000, False).at_or_after(0.4)
    assert StepTime(650.5, 1000, False).after(0.65) and not StepTime(650.0, 1000, False).after(0.65)
    # a boundary between integers stays where it is
    assert not StepTime(400.0, 1000, False).at_or_after(0.4004)
    assert StepTime(400.2, 1000, False).after(0.4001) and not StepTime(400.2, 1000, False).after(0.4004)


def test_step_time_compat_rounds_the_boundary():
    # 0.4004 * 1000 = 400.4 rounds to 400
    assert StepTime(400, 1000, True).at_or_after(0.4004)
    assert not StepTime(400, 1000, True).after(0.4004)
    assert StepTime(401, 1000, True).after(0.4004)
    # 0.4006 * 1000 rounds to 401
    assert not StepTime(400, 1000, True).at_or_after(0.4006)
    assert StepTime(651, 1000, True).after(0.65) and not StepTime(650, 1000, True).after(0.65)


# --- stage 1: pseudo-reference guidance -------------------------------------------------------

H, W = 6, 7


def stage1_inputs():
    degraded = uniform(1, 3, H, W, seed=20)
    scratch = torch.zeros(1, 1, H, W, dtype=D)
    scratch[0, 0, 1, 1] = 1.0
    scratch[0, 0, 2, 4] = 0.3
    scratch[0, 0, 4, 5] = 0.01  # faint anti-aliased pixels are zeroed too
    scratch[0, 0, 5, 0] = 0.5
    x0h = uniform(1, 3, H, W, seed=21, low=-0.4, high=0.4)
    return degraded, scratch, x0h


def autograd(loss, x):
    x = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(loss(x), x)[0]


def test_stage1_gradient_is_zero_on_every_scratch_pixel():
    degraded, scratch, x0h = stage1_inputs()
    run = PseudoReferenceGuidance(degraded, scratch).start(torch.zeros_like(x0h))
    for t in (900.0, 500.0, 0.0):
        g = run.gradient(x0h, StepTime(t, 1000, False))
        damaged = (scratch > 0).expand_as(g)
        assert (g[damaged] == 0).all()
        assert (g[~damaged] != 0).all()


def test_stage1_colour_copy_comes_from_the_input_above_065():
    degraded, scratch, x0h = stage1_inputs()
    undamaged = (scratch == 0).to(D)
    run = PseudoReferenceGuidance(degraded, scratch).start(torch.zeros_like(x0h))
    lightness = 2 * (grayscale(x0h) - grayscale(degraded))
    from_input = (lightness + 2 * (x0h - adain_to_face_colour(degraded))) * undamaged
    from_x0 = (lightness + autograd(lambda x: face_colour_loss(x, x), x0h)) * undamaged
    assert not torch.allclose(from_input, from_x0, atol=1e-3)
    for t, expected in [(651.0, from_input), (650.5, from_input), (650.0, from_x0), (300.0, from_x0)]:
        torch.testing.assert_close(run.gradient(x0h, StepTime(t, 1000, False)), expected)
    # weights scale their terms
    run2 = PseudoReferenceGuidance(degraded, scratch, lightness_weight=0.0, colour_weight=2.0).start(x0h)
    torch.testing.assert_close(run2.gradient(x0h, StepTime(900.0, 1000, False)),
                               4 * (x0h - adain_to_face_colour(degraded)) * undamaged)


def test_stage1_broadcasts_a_single_input_and_checks_sizes():
    degraded, scratch, x0h = stage1_inputs()
    batch = torch.cat([x0h, x0h.flip(-1)])
    g = PseudoReferenceGuidance(degraded, scratch).start(batch).gradient(batch, StepTime(900.0, 1000, False))
    single = PseudoReferenceGuidance(degraded, scratch).start(x0h).gradient(x0h, StepTime(900.0, 1000, False))
    torch.testing.assert_close(g[:1], single)
    with pytest.raises(ValueError):
        PseudoReferenceGuidance(degraded, scratch).start(torch.zeros(1, 3, H + 1, W, dtype=D))
    with pytest.raises(ValueError):
        PseudoReferenceGuidance(degraded.expand(3, -1, -1, -1), scratch).start(torch.zeros(2, 3, H, W, dtype=D))


def test_correction_rules():
    degraded, scratch, _ = stage1_inputs()
    paper = PseudoReferenceGuidance(degraded, scratch).start(degraded)
    compat = PseudoReferenceGuidance(degraded, scratch, variant=RELEASED_CODE).start(degraded)
    assert paper.correction_rule(0) == (True, True) and paper.correction_rule(1) == (True, True)
    assert compat.correction_rule(0) == (False, True) and compat.correction_rule(1) == (False, False)
    spec = stage2_spec()
    assert spec.start(spec.coarse).correction_rule(0) == (True, True)
    assert stage2_spec(variant=RELEASED_CODE).start(spec.coarse).correction_rule(2) == (False, True)


# --- stage 2: selective guidance --------------------------------------------------------------

def stage2_masks():
    labels = torch.ones(1, 8, 8, dtype=torch.long)  # skin
    labels[0, :, :3] = 0                             # background on the left
    labels[0, :2, 3:] = 17                           # hair on top
    scratch = torch.zeros(1, 1, 8, 8)
    scratch[0, 0, 2:6, 2] = 1.0
    masks = selective_masks(scratch, labels)
    assert masks.reference.any() and masks.damage.any() and masks.colour_free.any()
    assert not masks.damage.all() and not masks.colour_free.all()
    return masks


def stage2_spec(**overrides):
    arguments = dict(coarse=uniform(1, 3, 8, 8, seed=30), pseudo_reference=uniform(1, 3, 8, 8, seed=31),
                     masks=stage2_masks())
    arguments.update(overrides)
    return SelectiveGuidance(**arguments)


X0H = uniform(1, 3, 8, 8, seed=32, low=-0.8, high=0.8)
TARGET = uniform(1, 3, 8, 8, seed=33)


def structure_gradient(spec):
    return 2 * (X0H - spec.coarse) * ~spec.masks.damage


def stage2_gradient(t, reference_compat=False, **overrides):
    spec = stage2_spec(variant=variant_of(reference_compat), **overrides)
    return spec.start(X0H).gradient(X0H, StepTime(t, 1000, reference_compat))


def test_stage2_colour_term_before_t1_by_hand():
    spec = stage2_spec(colour_target=TARGET, colour_weight=5.0, structure_weight=2.0)
    g = spec.start(X0H).gradient(X0H, StepTime(300.0, 1000, False))
    expected = 2 * structure_gradient(spec) + 5.0 * 2 * (X0H - TARGET) * ~spec.masks.colour_free
    torch.testing.assert_close(g, expected)


@pytest.mark.parametrize("compat", [False, True])
def test_stage2_colour_weight_matters_only_before_t1(compat):
    for t in (399.0, 100.0, 0.0):
        assert not torch.allclose(stage2_gradient(t, compat, colour_target=TARGET, colour_weight=20.0),
                                  stage2_gradient(t, compat, colour_target=TARGET, colour_weight=5.0))
    for t in (400.0, 401.0, 900.0):
        torch.testing.assert_close(stage2_gradient(t, compat, colour_target=TARGET, colour_weight=20.0),
                                   stage2_gradient(t, compat, colour_target=TARGET, colour_weight=5.0))


def test_stage2_reference_term_acts_from_t1_in_paper_mode_only():
    for t in (400.0, 700.0):
        strong = stage2_gradient(t, reference_weight=100.0)
        weak = stage2_gradient(t, reference_weight=10.0)
        assert not torch.allclose(strong, weak)
        # it acts only inside M_r
        outside = ~stage2_spec().masks.reference.expand_as(strong)
        torch.testing.assert_close(strong[outside], weak[outside])
        compat = stage2_gradient(t, True, reference_weight=100.0)
        torch.testing.assert_close(compat, stage2_gradient(t, True, reference_weight=10.0))
        torch.testing.assert_close(compat, structure_gradient(stage2_spec()))
    # before T1 it is off in both modes
    torch.testing.assert_close(stage2_gradient(399.0, reference_weight=100.0),
                               stage2_gradient(399.0, reference_weight=10.0))


class RecordingTransfer:
    def __init__(self):
        self.calls = []

    def __call__(self, content, style, region):
        self.calls.append((content.clone(), style.clone(), region.clone()))
        return torch.full_like(content, 0.25)


def test_paper_mode_builds_the_colour_target_at_the_first_step_at_or_below_t1():
    transfer = RecordingTransfer()
    spec = stage2_spec(colour_transfer=transfer)
    run = spec.start(X0H)
    run.gradient(X0H, StepTime(500.0, 1000, False))
    run.gradient(X0H, StepTime(400.5, 1000, False))
    assert not transfer.calls and run.colour_target is None
    g = run.gradient(X0H, StepTime(390.0, 1000, False))  # no step at 400 before it
    assert len(transfer.calls) == 1
    content, style, region = transfer.calls[0]
    torch.testing.assert_close(content, X0H)
    torch.testing.assert_close(style, spec.pseudo_reference)
    assert torch.equal(region, ~spec.masks.colour_free)
    assert (run.colour_target == 0.25).all()
    colour = 20.0 * 2 * (X0H - 0.25) * ~spec.masks.colour_free
    torch.testing.assert_close(g, structure_gradient(spec) + colour)
    run.gradient(X0H, StepTime(300.0, 1000, False))
    assert len(transfer.calls) == 1  # built once
    # a new run starts without a target (no state on the spec)
    fresh = spec.start(X0H)
    assert fresh.colour_target is None
    fresh.gradient(X0H, StepTime(400.0, 1000, False))  # exactly T1 also builds it
    assert len(transfer.calls) == 2


def test_colour_reference_replaces_the_pseudo_reference_as_style():
    transfer = RecordingTransfer()
    style = uniform(1, 3, 8, 8, seed=34)
    stage2_spec(colour_transfer=transfer, colour_reference=style).start(X0H).gradient(X0H, StepTime(10.0, 1000, False))
    torch.testing.assert_close(transfer.calls[0][1], style)


def test_compat_mode_builds_the_colour_target_only_at_t_400():
    transfer = RecordingTransfer()
    spec = stage2_spec(colour_transfer=transfer, variant=RELEASED_CODE)
    run = spec.start(X0H)
    g = run.gradient(X0H, StepTime(390, 1000, True))
    assert not transfer.calls and run.colour_target is None
    torch.testing.assert_close(g, structure_gradient(spec))  # no colour term without a target
    g = run.gradient(X0H, StepTime(400, 1000, True))
    assert len(transfer.calls) == 1
    torch.testing.assert_close(g, structure_gradient(spec))  # the target acts below T1 only
    content, style, region = transfer.calls[0]
    free = spec.masks.colour_free.expand_as(content)
    assert (content[free] == 1).all() and (style[free] == 1).all()  # whitened
    torch.testing.assert_close(content[~free], X0H[~free])
    assert region.all()
    g = run.gradient(X0H, StepTime(399, 1000, True))
    torch.testing.assert_close(g, structure_gradient(spec) + 20.0 * 2 * (X0H - 0.25) * ~spec.masks.colour_free)


def test_t1_must_be_a_fraction():
    for t1 in (0.0, 1.0, 400):
        with pytest.raises(ValueError):
            stage2_spec(t1=t1)


def test_stage2_with_a_mask_covering_everything_is_finite():
    scratch = torch.ones(1, 1, 8, 8)
    for labels in (None, torch.zeros(1, 8, 8, dtype=torch.long)):
        spec = stage2_spec(masks=selective_masks(scratch, labels))
        run = spec.start(X0H)
        for t in (700.0, 400.0, 100.0):
            g = run.gradient(X0H, StepTime(t, 1000, False))
            assert torch.isfinite(g).all()
            corrected, k = apply_normalised_correction(X0H, TARGET, g, spec.scale)
            assert torch.isfinite(corrected).all() and torch.isfinite(k).all()
    # no labels, all damaged, nothing colour-free before a target exists: g = 0, k = 0
    spec = stage2_spec(masks=selective_masks(scratch, None))
    g = spec.start(X0H).gradient(X0H, StepTime(700.0, 1000, False))
    assert (g == 0).all()
    corrected, k = apply_normalised_correction(X0H, TARGET, g, spec.scale)
    assert torch.equal(corrected, TARGET) and (k == 0).all()


# --- ComfyUI runs nodes under inference mode --------------------------------------------------

def test_guidance_works_on_inference_tensors_under_inference_mode():
    degraded, scratch, x0h = stage1_inputs()
    expected1 = PseudoReferenceGuidance(degraded, scratch).start(x0h).gradient(x0h, StepTime(300.0, 1000, False))
    spec = stage2_spec()
    normal_run = spec.start(X0H)
    expected2 = [normal_run.gradient(X0H, StepTime(t, 1000, False)) for t in (500.0, 390.0, 100.0)]

    labels = torch.ones(1, 8, 8, dtype=torch.long)
    labels[0, :, :3] = 0
    labels[0, :2, 3:] = 17
    with torch.inference_mode():
        inf_degraded, inf_scratch, inf_x0h = degraded.clone(), scratch.clone(), x0h.clone()
        s2_scratch = torch.zeros(1, 1, 8, 8)
        s2_scratch[0, 0, 2:6, 2] = 1.0
        masks = selective_masks(s2_scratch, labels.clone())
        inf_coarse, inf_reference, inf_x0h2 = spec.coarse.clone(), spec.pseudo_reference.clone(), X0H.clone()
        assert inf_x0h.is_inference() and masks.damage.is_inference()

        g1 = PseudoReferenceGuidance(inf_degraded, inf_scratch).start(inf_x0h).gradient(
            inf_x0h, StepTime(300.0, 1000, False))
        inf_run = SelectiveGuidance(inf_coarse, inf_reference, masks).start(inf_x0h2)
        g2 = [inf_run.gradient(inf_x0h2, StepTime(t, 1000, False)) for t in (500.0, 390.0, 100.0)]
        corrected, _ = apply_normalised_correction(inf_x0h2, inf_coarse, g2[-1], 0.0035)

    torch.testing.assert_close(g1, expected1)
    assert inf_run.colour_target is not None
    for got, want in zip(g2, expected2):
        torch.testing.assert_close(got, want)
    assert torch.isfinite(corrected).all()
