"""Property tests over random small shapes and values (hypothesis). Tensors are drawn from a
seeded torch generator; hypothesis picks the shapes, seeds and levels."""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_ssdiff.ssdiff_core.correction import apply_normalised_correction
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance
from comfyui_ssdiff.ssdiff_core.losses import (adain_to_face_colour, colour_loss, face_colour_loss, gradient_magnitude,
                                grayscale, lightness_loss, reference_structure_loss, structure_loss)
from comfyui_ssdiff.ssdiff_core.masks import plus_dilate, selective_masks
from comfyui_ssdiff.ssdiff_core.schedule import StepTime, respaced_timesteps, timestep_of_sigma

D = torch.float64
FAST = settings(max_examples=25, deadline=None, database=None)

shapes = st.tuples(st.integers(1, 2), st.integers(4, 12), st.integers(4, 12))
seeds = st.integers(0, 2 ** 31 - 1)
SCRATCH_LEVELS = torch.tensor([0.0, 0.01, 0.3, 0.5, 0.51, 1.0])

BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=D)
ABAR = torch.cumprod(1 - BETAS, 0)
SIGMAS = ((1 - ABAR) / ABAR).sqrt()


def slow_plus(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Plus-shaped dilation written with loops: a pixel is set if a set pixel lies within
    `radius` in its row or its column."""
    out = torch.zeros_like(mask, dtype=torch.bool)
    b, _, h, w = mask.shape
    for i in range(b):
        for r in range(h):
            for c in range(w):
                rows = mask[i, 0, max(0, r - radius):r + radius + 1, c]
                cols = mask[i, 0, r, max(0, c - radius):c + radius + 1]
                out[i, 0, r, c] = bool(rows.any() or cols.any())
    return out


def random_scratch(shape, generator, density: float) -> torch.Tensor:
    b, h, w = shape
    levels = SCRATCH_LEVELS[torch.randint(1, len(SCRATCH_LEVELS), (b, 1, h, w), generator=generator)]
    return torch.where(torch.rand(b, 1, h, w, generator=generator) < density, levels, torch.zeros(()))


def random_labels(shape, generator) -> torch.Tensor:
    # a few labels, so growth meets both allowed and protected regions
    palette = torch.tensor([0, 1, 4, 10, 12, 14, 16, 17])
    return palette[torch.randint(0, len(palette), shape, generator=generator)]


@FAST
@given(shape=shapes, seed=seeds, radius=st.integers(0, 5), density=st.floats(0, 0.3))
def test_plus_dilate_matches_the_definition(shape, seed, radius, density):
    b, h, w = shape
    mask = torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(seed)) < density
    grown = plus_dilate(mask, radius)
    assert grown.dtype == torch.bool and grown.shape == mask.shape
    assert torch.equal(grown, slow_plus(mask, radius))
    assert (grown | ~mask).all()


@FAST
@given(shape=shapes, seed=seeds, density=st.floats(0, 1), parsed=st.booleans())
def test_selective_masks_are_boolean_and_follow_their_definitions(shape, seed, density, parsed):
    b, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    scratch = random_scratch(shape, generator, density)
    labels = random_labels(shape, generator) if parsed else None
    masks = selective_masks(scratch, labels)
    for mask in (masks.damage, masks.reference, masks.colour_free):
        assert mask.dtype == torch.bool and mask.shape == (b, 1, h, w)
    as_labels = (labels if parsed else torch.ones(shape, dtype=torch.long)).unsqueeze(1)

    def region(*ids):
        return torch.isin(as_labels, torch.tensor(ids))

    expected_damage = (scratch > 0.5) | (slow_plus(scratch != 0, 4) & region(0, 1, 14, 17))
    assert torch.equal(masks.damage, expected_damage)
    assert torch.equal(masks.reference, slow_plus(region(0) & expected_damage, 8))
    assert torch.equal(masks.colour_free, region(0, 16, 17))
    if not parsed:
        assert not masks.reference.any() and not masks.colour_free.any()


@FAST
@given(shape=shapes, seed=seeds, spread=st.floats(0.01, 3.0), density=st.floats(0, 1))
def test_losses_are_finite_and_non_negative(shape, seed, spread, density):
    b, h, w = shape
    generator = torch.Generator().manual_seed(seed)

    def image():
        return (torch.rand(b, 3, h, w, generator=generator, dtype=D) * 2 - 1) * spread

    def mask():
        return torch.rand(b, 1, h, w, generator=generator) < density

    x0, other, region = image(), image(), mask()
    values = {
        "lightness": lightness_loss(x0, other, mask()),
        "face_colour_x0": face_colour_loss(x0, x0),
        "face_colour_input": face_colour_loss(x0, other),
        "structure": structure_loss(x0, other, mask()),
        "reference_structure": reference_structure_loss(x0, other, region),
        "colour": colour_loss(x0, other, mask()),
    }
    for name, value in values.items():
        assert value.shape == () and math.isfinite(value.item()) and value.item() >= 0, name
    undamaged = mask()
    single = ((grayscale(x0) - grayscale(other))[:, :1] ** 2 * undamaged).sum()
    assert abs(lightness_loss(x0, other, undamaged).item() - 3 * single.item()) <= 1e-9 * (1 + single.item())
    recoloured = adain_to_face_colour(x0)
    assert torch.isfinite(recoloured).all() and recoloured.abs().max() <= 1
    gm = gradient_magnitude(x0, region)
    assert gm.shape == (b, 1, h, w) and (gm >= 0).all() and (gm[~region] == 0).all()


@FAST
@given(shape=shapes, seed=seeds)
def test_constant_images_stay_finite(shape, seed):
    b, h, w = shape
    value = torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=D).item() * 2 - 1
    flat = torch.full((b, 3, h, w), value, dtype=D)
    assert torch.isfinite(adain_to_face_colour(flat)).all()
    x = flat.clone().requires_grad_(True)
    gradient, = torch.autograd.grad(face_colour_loss(x, x), x)
    assert torch.isfinite(gradient).all()


@FAST
@given(shape=shapes, seed=seeds, scale=st.floats(0, 1), per_image=st.booleans(), per_channel=st.booleans(),
       zero_channels=st.lists(st.booleans(), min_size=3, max_size=3))
def test_correction_is_finite_and_moves_by_the_documented_norm(shape, seed, scale, per_image, per_channel,
                                                               zero_channels):
    b, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    x_t = torch.randn(b, 3, h, w, generator=generator, dtype=D)
    x_unguided = torch.randn(b, 3, h, w, generator=generator, dtype=D)
    gradient = torch.randn(b, 3, h, w, generator=generator, dtype=D) * 10 ** torch.randint(-3, 4, (b, 3, 1, 1), generator=generator)
    gradient[:, torch.tensor(zero_channels)] = 0
    corrected, k = apply_normalised_correction(x_t, x_unguided, gradient, scale, per_image, per_channel)
    assert torch.isfinite(corrected).all() and torch.isfinite(k).all() and (k >= 0).all()
    dims = [d for d, keep in ((0, not per_image), (1, not per_channel), (2, True), (3, True)) if keep]
    moved = (corrected - x_unguided).square().sum(dim=dims).sqrt()
    step = (x_t - x_unguided).square().sum(dim=dims).sqrt()
    has_gradient = gradient.square().sum(dim=dims).sqrt() > 0
    torch.testing.assert_close(moved[has_gradient], scale * step[has_gradient])
    assert (moved[~has_gradient] == 0).all()
    assert torch.equal(corrected[:, torch.tensor(zero_channels)], x_unguided[:, torch.tensor(zero_channels)])


@FAST
@given(a=st.floats(-12, 6), b=st.floats(-12, 6))
def test_timestep_of_sigma_is_monotone_and_in_range(a, b):
    low, high = sorted((math.exp(a), math.exp(b)))
    t_low, t_high = timestep_of_sigma(low, SIGMAS), timestep_of_sigma(high, SIGMAS)
    assert 0 <= t_low <= t_high <= 999


@FAST
@given(t=st.integers(0, 999), fraction=st.floats(0, 1))
def test_timestep_of_sigma_inverts_the_log_interpolation(t, fraction):
    upper = min(t + 1, 999)
    sigma = math.exp((1 - fraction) * math.log(SIGMAS[t]) + fraction * math.log(SIGMAS[upper]))
    assert abs(timestep_of_sigma(sigma, SIGMAS) - (t + fraction * (upper - t))) < 1e-6


@FAST
@given(steps=st.integers(1, 1000))
def test_respaced_timesteps_are_distinct_descending_and_span_the_schedule(steps):
    timesteps = respaced_timesteps(steps)
    assert len(timesteps) == steps
    assert timesteps[0] == 999 and all(a > b for a, b in zip(timesteps, timesteps[1:]))
    if steps > 1:
        assert timesteps[-1] == 0


@settings(max_examples=15, deadline=None, database=None)
@given(shape=shapes, seed=seeds, density=st.floats(0, 1), t=st.floats(0, 999))
def test_stage1_gradient_is_finite_and_zero_on_the_scratch(shape, seed, density, t):
    b, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    scratch = random_scratch(shape, generator, density)
    degraded = torch.rand(b, 3, h, w, generator=generator, dtype=D) * 2 - 1
    x0h = torch.rand(b, 3, h, w, generator=generator, dtype=D) * 2 - 1
    g = PseudoReferenceGuidance(degraded, scratch).start(x0h).gradient(x0h, StepTime(t, 1000, False))
    assert g.shape == x0h.shape and torch.isfinite(g).all()
    assert (g[(scratch > 0).expand_as(g)] == 0).all()
