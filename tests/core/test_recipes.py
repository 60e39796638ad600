"""What fine-tuning trains of each architecture, and on which loss: one table (training/recipes.py)."""
from __future__ import annotations

import pytest

from comfyui_ssdiff.training.recipes import PIXEL_RECIPE, RECIPES, recipe_of


def test_codeformer_trains_on_its_codes_as_released_with_a_transformer_only_mode():
    recipe = recipe_of("CodeFormer")
    assert recipe.objective == "codes" and not recipe.takes_perceptual_loss
    assert set(recipe.frozen) == {"quantize", "generator", "fuse_convs_dict"}
    assert recipe.transformer == ("position_emb", "feat_emb", "ft_layers", "idx_pred_layer")
    assert recipe.loss_name() == "code losses"


@pytest.mark.parametrize("architecture, frozen", [("GFPGAN", ("stylegan_decoder",)), ("RestoreFormer", ()),
                                                   ("SomeOtherRestorer", ())])
def test_pixel_recipes_freeze_only_their_own_parts_and_take_lpips(architecture, frozen):
    recipe = recipe_of(architecture)
    assert recipe.objective == "pixels" and recipe.takes_perceptual_loss and recipe.transformer is None
    assert recipe.frozen == frozen, "another architecture's parts are never frozen for it"
    assert recipe.loss_name() == "L1 pixel loss" and recipe.loss_name(0.1) == "L1 pixel loss + 0.1 x LPIPS"
    assert (architecture in RECIPES) or recipe is PIXEL_RECIPE
