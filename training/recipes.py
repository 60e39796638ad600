"""What fine-tuning trains of each restorer architecture, and on which loss: one table.

CodeFormer is trained as the released fine-tune trains it (the quantizer, the generator and the
fusion blocks frozen, losses on its codes); GFPGAN with its StyleGAN decoder frozen and an L1
pixel loss; RestoreFormer and any other restorer spandrel builds, whole, with the L1 pixel loss.
A pixel recipe takes LPIPS beside L1 where a perceptual loss is given (DT-BFR's 0.1 x LPIPS)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.face_restorers import CODEFORMER

TRAINED_PARTS = ("encoder_and_transformer", "transformer_only")
"""What of CodeFormer trains: as the released fine-tune, or `transformer_only`."""


@dataclass(frozen=True)
class Recipe:
    objective: Literal["codes", "pixels"]
    frozen: tuple[str, ...] = ()
    """Top-level modules that never train."""
    transformer: tuple[str, ...] | None = None
    """The modules that train under `transformer_only` (None: the recipe has no such mode)."""

    @property
    def takes_perceptual_loss(self) -> bool:
        return self.objective == "pixels"

    def loss_name(self, perceptual_weight: float | None = None) -> str:
        if self.objective == "codes":
            return "code losses"
        return "L1 pixel loss" if perceptual_weight is None else f"L1 pixel loss + {perceptual_weight:g} x LPIPS"


RECIPES: dict[str, Recipe] = {
    CODEFORMER: Recipe("codes", frozen=("quantize", "generator", "fuse_convs_dict"),
                       transformer=("position_emb", "feat_emb", "ft_layers", "idx_pred_layer")),
    "GFPGAN": Recipe("pixels", frozen=("stylegan_decoder",)),
    "RestoreFormer": Recipe("pixels"),
}
PIXEL_RECIPE = Recipe("pixels")
"""Any other architecture spandrel builds: trained whole on the pixel loss."""


def recipe_of(architecture: str) -> Recipe:
    return RECIPES.get(architecture, PIXEL_RECIPE)
