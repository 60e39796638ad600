"""The guidance losses on the x0 estimate, and the built-in colour transfer that makes the colour
target at T1. Expected values are worked out by hand on tiny images."""
from __future__ import annotations

import math

import pytest
import torch

from comfyui_ssdiff.ssdiff_core.colour_transfer import masked_mean_std_transfer
from comfyui_ssdiff.ssdiff_core.losses import (FACE_COLOUR_MEAN, FACE_COLOUR_STD, adain_to_face_colour, colour_loss,
                                face_colour_loss, gradient_magnitude, grayscale, lightness_loss,
                                reference_structure_loss, structure_loss)

D = torch.float64


def image(*pixels_rgb) -> torch.Tensor:
    """1 x 3 x 1 x N image from N (r, g, b) pixels."""
    return torch.tensor(pixels_rgb, dtype=D).T.reshape(1, 3, 1, len(pixels_rgb))


def row_mask(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool).reshape(1, 1, 1, len(values))


def grad_of(loss_fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    gradient, = torch.autograd.grad(loss_fn(x), x)
    return gradient


# --- grayscale and lightness ----------------------------------------------------------------

def test_grayscale_is_the_channel_mean_in_every_channel():
    gray = grayscale(image((0.3, 0.6, 0.9), (-1.0, 0.0, 0.5)))
    assert gray.shape == (1, 3, 1, 2)
    expected = torch.tensor([0.6, -1 / 6], dtype=D)
    for channel in range(3):
        torch.testing.assert_close(gray[0, channel, 0], expected)


X0 = image((0.2, 0.5, 0.8), (-0.3, 0.0, 0.3), (-0.6, 0.0, 0.0))        # grays 0.5, 0.0, -0.2
DEGRADED = image((0.1, 0.1, 0.1), (0.9, 0.9, 0.9), (0.3, 0.6, 0.0))    # grays 0.1, 0.9, 0.3
UNDAMAGED = row_mask(True, False, True)


def test_lightness_loss_is_three_times_the_single_channel_sum():
    # gray differences 0.4, -0.9 (damaged: ignored), -0.5 -> 0.16 + 0.25 = 0.41 per channel
    loss = lightness_loss(X0, DEGRADED, UNDAMAGED)
    assert loss.item() == pytest.approx(3 * 0.41, abs=1e-12)
    assert lightness_loss(X0, DEGRADED, row_mask(True, True, True)).item() == pytest.approx(3 * 1.22, abs=1e-12)
    assert lightness_loss(X0, DEGRADED, row_mask(False, False, False)).item() == 0.0


def test_lightness_gradient_by_hand():
    # d/dx[c] of 3 * sum (mean_c x - g_y)^2 = 3 * 2 * diff / 3 = 2 * diff on undamaged pixels
    gradient = grad_of(lambda x: lightness_loss(x, DEGRADED, UNDAMAGED), X0)
    expected = torch.tensor([0.8, 0.0, -1.0], dtype=D).expand(1, 3, 1, 3)
    torch.testing.assert_close(gradient, expected)


def test_lightness_ignores_colour_only_lightness_counts():
    # same gray, different colour: no loss
    assert lightness_loss(image((1.0, -1.0, 0.0)), image((0.0, 0.0, 0.0)), row_mask(True)).item() == 0.0


# --- AdaIN to the face colour statistics ------------------------------------------------------

def two_valued(n_pixels: int = 4) -> torch.Tensor:
    """Each channel alternates two values half the time each: standardised values are +-0.866,
    so the recoloured image stays well inside [-1, 1] (no clamping)."""
    lows = torch.tensor([-0.7, 0.1, 0.3], dtype=D)
    highs = lows + torch.tensor([1.0, 0.4, 0.2], dtype=D)
    pattern = torch.arange(n_pixels) % 2 == 0
    values = torch.where(pattern[None, :], highs[:, None], lows[:, None])
    return values.reshape(1, 3, 2, n_pixels // 2)


def test_adain_sets_face_mean_and_unbiased_std():
    out = adain_to_face_colour(two_valued())
    assert out.abs().max() < 0.9  # not clamped
    flat = out.flatten(2)[0]
    torch.testing.assert_close(flat.mean(1), torch.tensor(FACE_COLOUR_MEAN, dtype=D), atol=1e-12, rtol=0)
    # unbiased variance of a two-valued channel of 4 pixels with values d apart: (4/3)(d/2)^2;
    # std ratio sqrt(var / (var + 1e-5)). A biased variance would give sqrt(3/4) = 0.87 instead.
    variance = torch.tensor([1.0, 0.4, 0.2], dtype=D) ** 2 / 3
    expected = torch.tensor(FACE_COLOUR_STD, dtype=D) * (variance / (variance + 1e-5)).sqrt()
    torch.testing.assert_close(flat.std(1, unbiased=True), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=True), torch.tensor(FACE_COLOUR_STD, dtype=D),
                               atol=0, rtol=1e-3)


def test_adain_epsilon_by_hand_on_a_tiny_variance():
    x = torch.zeros(1, 3, 2, 2, dtype=D)
    x[0, 0] = torch.tensor([[1e-3, -1e-3], [1e-3, -1e-3]], dtype=D)
    out = adain_to_face_colour(x)
    # unbiased variance 4e-6 / 3; std ratio sqrt(var / (var + 1e-5)) = sqrt(2 / 17) = 0.342997
    ratio = math.sqrt(2 / 17)
    assert out[0, 0].flatten().std().item() == pytest.approx(FACE_COLOUR_STD[0] * ratio, rel=1e-6)
    assert out[0, 0, 0, 0].item() == pytest.approx(FACE_COLOUR_MEAN[0] + FACE_COLOUR_STD[0] * 1e-3 / math.sqrt(4e-6 / 3 + 1e-5), rel=1e-9)
    # constant channels: no division by zero, they take the target mean
    torch.testing.assert_close(out[0, 1:], torch.tensor(FACE_COLOUR_MEAN[1:], dtype=D)[:, None, None].expand(2, 2, 2))


def test_adain_clamps_to_unit_range():
    x = torch.zeros(1, 3, 4, 4, dtype=D)
    x[:, :, 3, 3] = 10.0  # one outlier per channel: mean 0.625, unbiased std 2.5, z = 3.75 / -0.25
    out = adain_to_face_colour(x)
    assert torch.isfinite(out).all()
    assert out.max().item() == 1.0 and out.min().item() >= -1.0
    assert out[0, 0, 3, 3].item() == 1.0
    assert out[0, 0, 0, 0].item() == pytest.approx(FACE_COLOUR_MEAN[0] - 0.25 * FACE_COLOUR_STD[0], rel=1e-5)


def test_face_colour_loss_from_the_degraded_input_by_hand():
    x0 = two_valued() * 0.5
    y = two_valued().flip(-1)
    target = adain_to_face_colour(y)
    assert face_colour_loss(x0, y).item() == pytest.approx(((x0 - target) ** 2).sum().item(), rel=1e-12)
    torch.testing.assert_close(grad_of(lambda x: face_colour_loss(x, y), x0), 2 * (x0 - target))


def test_face_colour_loss_gradient_flows_through_the_adain_copy_of_x0():
    g = torch.Generator().manual_seed(3)
    x0 = (torch.rand(1, 3, 3, 3, generator=g, dtype=D) - 0.5) * 0.4  # small: no clamping
    assert adain_to_face_colour(x0).abs().max() < 1
    through = grad_of(lambda x: face_colour_loss(x, x), x0)
    detached = grad_of(lambda x: face_colour_loss(x, x.detach()), x0)
    assert not torch.allclose(through, detached, atol=1e-3)
    # central finite differences of the loss agree with the gradient through the copy
    h = 1e-6
    for index in [(0, 0, 0, 0), (0, 1, 1, 2), (0, 2, 2, 1), (0, 0, 1, 1)]:
        plus, minus = x0.clone(), x0.clone()
        plus[index] += h
        minus[index] -= h
        numeric = (face_colour_loss(plus, plus) - face_colour_loss(minus, minus)).item() / (2 * h)
        assert numeric == pytest.approx(through[index].item(), rel=1e-5, abs=1e-7)
        assert abs(numeric - detached[index].item()) > 1e-3


# --- structure and colour -------------------------------------------------------------------

def test_structure_loss_counts_only_undamaged_pixels():
    x0 = image((0.5, -0.5, 0.0), (1.0, 1.0, 1.0))
    coarse = image((0.2, -0.1, 0.3), (0.0, 0.0, 0.0))
    assert structure_loss(x0, coarse, row_mask(False, True)).item() == pytest.approx(0.09 + 0.16 + 0.09)
    assert structure_loss(x0, coarse, row_mask(True, False)).item() == pytest.approx(3.0)
    assert structure_loss(x0, coarse, row_mask(True, True)).item() == 0.0
    gradient = grad_of(lambda x: structure_loss(x, coarse, row_mask(False, True)), x0)
    torch.testing.assert_close(gradient[..., 0], 2 * (x0 - coarse)[..., 0])
    assert (gradient[..., 1] == 0).all()


def test_colour_loss_ignores_colour_free_pixels():
    x0 = image((0.5, -0.5, 0.0), (1.0, 1.0, 1.0))
    target = image((0.2, -0.1, 0.3), (0.0, 0.0, 0.0))
    assert colour_loss(x0, target, row_mask(False, True)).item() == pytest.approx(0.34)
    assert colour_loss(x0, target, row_mask(True, False)).item() == pytest.approx(3.0)
    assert colour_loss(x0, target, row_mask(True, True)).item() == 0.0


# --- local gradient magnitude and the reference-structure term -----------------------------

IMG = torch.tensor([[0.0, 1.0, 3.0],
                    [2.0, 2.0, 0.0],
                    [5.0, 1.0, 1.0]], dtype=D)
# |vertical diff| + |horizontal diff| to the pixel below / to the right, zero past the edge
GM_ALL = torch.tensor([[3.0, 3.0, 3.0],
                       [3.0, 3.0, 1.0],
                       [4.0, 0.0, 0.0]], dtype=D)
# without the centre pixel: pairs (0,1)-(1,1), (1,1)-(2,1), (1,0)-(1,1), (1,1)-(1,2) drop out
GM_NO_CENTRE = torch.tensor([[3.0, 2.0, 3.0],
                             [3.0, 0.0, 1.0],
                             [4.0, 0.0, 0.0]], dtype=D)
ALL = torch.ones(1, 1, 3, 3, dtype=torch.bool)
NO_CENTRE = ALL.clone()
NO_CENTRE[0, 0, 1, 1] = False


def test_gradient_magnitude_by_hand():
    gm = gradient_magnitude(IMG[None, None], ALL)
    assert gm.shape == (1, 1, 3, 3)
    torch.testing.assert_close(gm[0, 0], GM_ALL)


def test_gradient_magnitude_counts_only_pairs_inside_the_region():
    torch.testing.assert_close(gradient_magnitude(IMG[None, None], NO_CENTRE)[0, 0], GM_NO_CENTRE)
    region = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    region[0, 0, 2, :2] = True  # only the pair (2,0)-(2,1) is inside
    expected = torch.zeros(3, 3, dtype=D)
    expected[2, 0] = 4.0
    torch.testing.assert_close(gradient_magnitude(IMG[None, None], region)[0, 0], expected)


def test_gradient_magnitude_pads_last_row_and_column_with_zero():
    x = torch.tensor([[0.0, 0.0], [0.0, 9.0]], dtype=D)[None, None]
    gm = gradient_magnitude(x, torch.ones(1, 1, 2, 2, dtype=torch.bool))
    torch.testing.assert_close(gm[0, 0], torch.tensor([[0.0, 9.0], [9.0, 0.0]], dtype=D))


def test_gradient_magnitude_averages_absolute_values_over_channels():
    x = torch.stack([IMG, -IMG, torch.zeros_like(IMG)])[None]  # abs of the mean would be 0
    torch.testing.assert_close(gradient_magnitude(x, ALL)[0, 0], GM_ALL * 2 / 3)


def test_reference_structure_loss_by_hand():
    x0 = IMG[None, None].expand(1, 3, 3, 3)
    flat = torch.zeros_like(x0)  # gradient magnitude 0 everywhere
    assert reference_structure_loss(x0, flat, ALL).item() == pytest.approx(62.0)
    assert reference_structure_loss(x0, flat, NO_CENTRE).item() == pytest.approx(48.0)
    assert reference_structure_loss(x0, x0.clone(), ALL).item() == 0.0
    # the reference's own gradient magnitudes are matched, not its values
    assert reference_structure_loss(x0, x0 + 0.7, ALL).item() == pytest.approx(0.0, abs=1e-24)


def test_reference_structure_loss_ignores_pixels_outside_the_region():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, 4, 4, generator=g, dtype=D)
    reference = torch.rand(1, 3, 4, 4, generator=g, dtype=D)
    region = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    region[0, 0, :2, :2] = True
    base = reference_structure_loss(x0, reference, region).item()
    assert base > 0
    changed_x0, changed_ref = x0.clone(), reference.clone()
    outside = ~region.expand_as(x0)
    changed_x0[outside] = torch.rand(int(outside.sum()), generator=g, dtype=D) * 5
    changed_ref[outside] = -3.0
    assert reference_structure_loss(changed_x0, changed_ref, region).item() == pytest.approx(base, rel=1e-12)
    changed_x0[0, 1, 0, 0] += 1.0  # a region pixel
    assert reference_structure_loss(changed_x0, changed_ref, region).item() != pytest.approx(base, rel=1e-6)
    gradient = grad_of(lambda x: reference_structure_loss(x, reference, region), x0)
    assert (gradient[outside] == 0).all()


# --- masked mean/std colour transfer ----------------------------------------------------------

def region_stats(x: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std over the region of a 3 x H x W image."""
    values = x[:, region[0]]
    return values.mean(1), values.std(1, unbiased=False)


def test_masked_transfer_matches_the_style_statistics_inside_the_region():
    g = torch.Generator().manual_seed(5)
    content = torch.rand(2, 3, 6, 7, generator=g, dtype=D) * 0.6 - 0.3
    style = torch.rand(2, 3, 6, 7, generator=g, dtype=D) * 0.5 - 0.1
    style[:, :, ::2] += 0.2  # different statistics inside and outside the region
    region = torch.rand(2, 1, 6, 7, generator=g) > 0.5
    out = masked_mean_std_transfer(content, style, region)
    assert out.shape == content.shape
    assert out.abs().max() < 1  # not clamped
    for b in range(2):
        out_mean, out_std = region_stats(out[b], region[b])
        style_mean, style_std = region_stats(style[b], region[b])
        torch.testing.assert_close(out_mean, style_mean, atol=1e-12, rtol=0)
        torch.testing.assert_close(out_std, style_std, atol=0, rtol=2e-3)
        content_mean, _ = region_stats(content[b], region[b])
        assert not torch.allclose(content_mean, style_mean, atol=1e-2)


def test_masked_transfer_leaves_an_image_with_an_empty_region_alone():
    g = torch.Generator().manual_seed(6)
    content = torch.rand(2, 3, 5, 5, generator=g, dtype=D) * 0.6 - 0.3
    style = torch.rand(2, 3, 5, 5, generator=g, dtype=D) * 0.4
    region = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
    region[0, 0, 1:4, 1:4] = True
    out = masked_mean_std_transfer(content, style, region)
    assert torch.equal(out[1], content[1])
    assert not torch.allclose(out[0], content[0])
    torch.testing.assert_close(region_stats(out[0], region[0])[0], region_stats(style[0], region[0])[0])
    nothing = masked_mean_std_transfer(content, style, torch.zeros_like(region))
    assert torch.equal(nothing, content)
