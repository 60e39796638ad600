"""The selective masks (M_o, M_r, M_style) and the plus-shaped dilation they are grown with.

Expected masks are written out as sets of (row, column) pixels, not recomputed with pooling."""
from __future__ import annotations

import pytest
import torch

from comfyui_ssdiff.ssdiff_core.masks import plus_dilate, selective_masks

SKIN, BACKGROUND, L_EYE, NOSE, U_LIP, L_LIP, L_BROW, NECK, CLOTH, HAIR = 1, 0, 4, 10, 12, 13, 2, 14, 16, 17


def pixels(mask: torch.Tensor) -> set[tuple[int, int]]:
    """The True pixels of a 1 x 1 x H x W (or H x W) mask."""
    mask = mask.reshape(mask.shape[-2:])
    return {(int(r), int(c)) for r, c in torch.nonzero(mask)}


def plus(row: int, col: int, radius: int, height: int, width: int) -> set[tuple[int, int]]:
    """A plus of arm `radius` around (row, col), cut at the image border (no wrap-around)."""
    arms = {(row + d, col) for d in range(-radius, radius + 1)} | {(row, col + d) for d in range(-radius, radius + 1)}
    return {(r, c) for r, c in arms if 0 <= r < height and 0 <= c < width}


def single(height: int, width: int, row: int, col: int, value: float = 1.0) -> torch.Tensor:
    mask = torch.zeros(1, 1, height, width)
    mask[0, 0, row, col] = value
    return mask


# --- plus_dilate ----------------------------------------------------------------------------

def test_plus_dilate_radius_1_is_a_plus_not_a_square():
    grown = plus_dilate(single(7, 7, 3, 3) > 0, 1)
    assert grown.dtype == torch.bool and grown.shape == (1, 1, 7, 7)
    assert pixels(grown) == {(3, 3), (2, 3), (4, 3), (3, 2), (3, 4)}
    assert not grown[0, 0, 2, 2] and not grown[0, 0, 4, 4]  # the square's corners


def test_plus_dilate_radius_2_is_a_plus_not_a_square():
    grown = plus_dilate(single(9, 9, 4, 4) > 0, 2)
    assert pixels(grown) == {(2, 4), (3, 4), (4, 4), (5, 4), (6, 4), (4, 2), (4, 3), (4, 5), (4, 6)}
    assert len(pixels(grown)) == 9  # a 5 x 5 square would have 25


def test_plus_dilate_accepts_a_float_01_mask_like_a_bool_one():
    as_float = plus_dilate(single(9, 9, 4, 4), 2)
    as_bool = plus_dilate(single(9, 9, 4, 4) > 0, 2)
    assert as_float.dtype == torch.bool
    assert torch.equal(as_float, as_bool)
    assert pixels(as_float) == plus(4, 4, 2, 9, 9)


def test_plus_dilate_is_cut_at_the_border_without_wrapping():
    grown = plus_dilate(single(5, 6, 0, 0) > 0, 2)
    assert pixels(grown) == {(0, 0), (1, 0), (2, 0), (0, 1), (0, 2)}
    # wrap-around would reach the last row / column
    assert not grown[0, 0, 4, 0] and not grown[0, 0, 3, 0] and not grown[0, 0, 0, 5] and not grown[0, 0, 0, 4]
    corner = plus_dilate(single(5, 6, 4, 5) > 0, 1)
    assert pixels(corner) == {(4, 5), (3, 5), (4, 4)}


def test_plus_dilate_keeps_batch_items_apart():
    masks = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    masks[0, 0, 1, 1] = True
    grown = plus_dilate(masks, 2)
    assert pixels(grown[0]) == plus(1, 1, 2, 6, 6)
    assert not grown[1].any()


# --- selective_masks: the damage mask M_o ---------------------------------------------------

def test_faint_scratch_on_an_eye_is_not_damage_but_faint_on_skin_is():
    labels = torch.full((1, 12, 12), SKIN)
    labels[0, 2, 2] = L_EYE
    scratch = torch.zeros(1, 1, 12, 12)
    scratch[0, 0, 2, 2] = 0.3   # faint pixel on the eye
    scratch[0, 0, 9, 9] = 0.3   # faint pixel on skin
    damage = selective_masks(scratch, labels).damage
    assert not damage[0, 0, 2, 2]
    assert damage[0, 0, 9, 9]
    # The eye pixel's growth still covers the skin around it; the skin pixel grows as a plus.
    expected = (plus(2, 2, 4, 12, 12) - {(2, 2)}) | plus(9, 9, 4, 12, 12)
    assert pixels(damage) == expected


def test_strong_scratch_is_damage_on_any_label():
    labels = torch.full((1, 12, 12), SKIN)
    labels[0, 5, 5] = L_EYE
    scratch = single(12, 12, 5, 5, 0.9)
    damage = selective_masks(scratch, labels).damage
    assert damage[0, 0, 5, 5]
    assert pixels(damage) == plus(5, 5, 4, 12, 12)


def test_threshold_is_strictly_above_one_half():
    labels = torch.full((1, 6, 6), L_EYE)  # no growth allowed anywhere
    scratch = torch.zeros(1, 1, 6, 6)
    scratch[0, 0, 1, 1] = 0.5
    scratch[0, 0, 4, 4] = 0.51
    assert pixels(selective_masks(scratch, labels).damage) == {(4, 4)}


def test_growth_stays_out_of_eyes_brows_nose_and_lips():
    h, w = 11, 11
    labels = torch.full((1, h, w), SKIN)
    protected = {(5, 3): L_EYE, (5, 7): NOSE, (3, 5): U_LIP, (7, 5): L_LIP, (5, 2): L_BROW}
    for (r, c), label in protected.items():
        labels[0, r, c] = label
    damage = selective_masks(single(h, w, 5, 5, 1.0), labels).damage
    assert pixels(damage) == plus(5, 5, 4, h, w) - set(protected)
    for r, c in protected:
        assert not damage[0, 0, r, c]
    # beyond a protected pixel the plus goes on (growth is a dilation, not a flood fill)
    assert damage[0, 0, 5, 1] and damage[0, 0, 5, 8] and damage[0, 0, 1, 5] and damage[0, 0, 9, 5]


def test_growth_allowed_exactly_on_background_skin_neck_hair():
    labels = torch.arange(19).reshape(1, 1, 19).expand(1, 5, 19).clone()
    scratch = torch.full((1, 1, 5, 19), 0.3)  # faint everywhere: damage = allowed labels only
    damage = selective_masks(scratch, labels).damage
    allowed_columns = {c for c in range(19) if damage[0, 0, :, c].all()}
    assert allowed_columns == {BACKGROUND, SKIN, NECK, HAIR}
    assert damage.sum() == 4 * 5


def test_colour_free_is_background_cloth_hair():
    labels = torch.arange(19).reshape(1, 1, 19).expand(1, 3, 19).clone()
    free = selective_masks(torch.zeros(1, 1, 3, 19), labels).colour_free
    assert {c for c in range(19) if free[0, 0, :, c].all()} == {BACKGROUND, CLOTH, HAIR}
    assert free.sum() == 3 * 3


def test_reference_is_background_damage_grown_by_8_as_a_plus():
    h, w = 20, 20
    labels = torch.full((1, h, w), SKIN)
    labels[0, :, :5] = BACKGROUND  # columns 0..4
    masks = selective_masks(single(h, w, 10, 3, 1.0), labels)
    damage = plus(10, 3, 4, h, w)
    assert pixels(masks.damage) == damage
    seed = {(r, c) for r, c in damage if c < 5}  # background & damage
    assert seed == {(r, 3) for r in range(6, 15)} | {(10, c) for c in range(5)}
    expected = set().union(*(plus(r, c, 8, h, w) for r, c in seed))
    assert pixels(masks.reference) == expected
    # hand-picked pixels
    assert masks.reference[0, 0, 10, 12] and not masks.reference[0, 0, 10, 13]  # (10,4) + 8 right
    assert masks.reference[0, 0, 0, 3] and masks.reference[0, 0, 19, 3]          # column 3 to the borders
    assert not masks.reference[0, 0, 2, 10]  # inside a square dilation, not a plus
    assert not masks.reference[0, 0, 0, 12]


def test_reference_empty_without_damaged_background():
    labels = torch.full((1, 12, 12), SKIN)
    labels[0, :, 10:] = BACKGROUND
    masks = selective_masks(single(12, 12, 3, 3, 1.0), labels)  # growth reaches column 7 at most
    assert masks.damage.any()
    assert not masks.reference.any()


def test_no_labels_means_skin_everywhere():
    h, w = 10, 9
    scratch = torch.zeros(1, 1, h, w)
    scratch[0, 0, 4, 4] = 0.2  # faint: damage only through growth, which skin allows
    masks = selective_masks(scratch, None)
    assert pixels(masks.damage) == plus(4, 4, 4, h, w)
    assert not masks.reference.any()
    assert not masks.colour_free.any()
    for mask in (masks.damage, masks.reference, masks.colour_free):
        assert mask.dtype == torch.bool and mask.shape == (1, 1, h, w)


def test_masks_are_per_image_in_a_batch():
    scratch = torch.zeros(2, 1, 12, 12)
    scratch[1, 0, 6, 6] = 1.0
    labels = torch.stack([torch.full((12, 12), SKIN), torch.full((12, 12), BACKGROUND)])
    masks = selective_masks(scratch, labels)
    assert not masks.damage[0].any() and not masks.reference[0].any()
    assert pixels(masks.damage[1]) == plus(6, 6, 4, 12, 12)
    assert masks.reference[1].any()
    assert not masks.colour_free[0].any() and masks.colour_free[1].all()


def test_zero_scratch_gives_no_damage():
    labels = torch.randint(0, 19, (2, 7, 6), generator=torch.Generator().manual_seed(0))
    masks = selective_masks(torch.zeros(2, 1, 7, 6), labels)
    assert not masks.damage.any() and not masks.reference.any()


@pytest.mark.parametrize("labels", [None, "background", "mixed"])
def test_a_mask_covering_everything_is_well_formed(labels):
    b, h, w = 2, 6, 7
    if labels == "background":
        labels = torch.zeros(b, h, w, dtype=torch.long)
    elif labels == "mixed":
        labels = torch.randint(0, 19, (b, h, w), generator=torch.Generator().manual_seed(1))
    masks = selective_masks(torch.ones(b, 1, h, w), labels)
    for mask in (masks.damage, masks.reference, masks.colour_free):
        assert mask.dtype == torch.bool and mask.shape == (b, 1, h, w)
    assert masks.damage.all()
    if labels is None:
        assert not masks.reference.any()
    elif isinstance(labels, torch.Tensor) and (labels == BACKGROUND).all():
        assert masks.reference.all() and masks.colour_free.all()
