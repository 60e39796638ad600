"""Face regions by name over CelebAMask-HQ label maps (the label order of both BiSeNets)."""
from __future__ import annotations

from collections.abc import Iterable

import torch

CELEBAMASK_HQ_LABELS: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)

SCRATCH_GROWTH_REGIONS = ("background", "skin", "neck", "hair")
"""Where a scratch mask may be grown: never into eyes, brows, nose or lips."""
REFERENCE_STRUCTURE_REGIONS = ("background",)
"""Damage here is restored from the pseudo-reference's local structure."""
COLOUR_FREE_REGIONS = ("background", "cloth", "hair")
"""Regions whose colour the colour term leaves alone (M_style)."""


REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "face": ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip"),
    "brows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "ears": ("l_ear", "r_ear"),
    "lips": ("u_lip", "l_lip"),
}
"""Names a user may give for several regions at once."""


def resolve_regions(text: str) -> tuple[str, ...]:
    """'face, hair' -> the region names it stands for (groups expanded, order kept)."""
    names: list[str] = []
    for word in (part.strip().lower() for part in text.replace(";", ",").split(",")):
        if not word:
            continue
        expanded = REGION_GROUPS.get(word, (word,))
        label_ids(expanded)
        names.extend(name for name in expanded if name not in names)
    return tuple(names)


def label_ids(names: Iterable[str]) -> tuple[int, ...]:
    unknown = [name for name in names if name not in CELEBAMASK_HQ_LABELS]
    if unknown:
        raise ValueError(f"unknown face regions {unknown}; known: {', '.join(CELEBAMASK_HQ_LABELS)} "
                         f"and the groups {', '.join(REGION_GROUPS)}")
    return tuple(CELEBAMASK_HQ_LABELS.index(name) for name in names)


def region_mask(labels: torch.Tensor, names: Iterable[str]) -> torch.Tensor:
    """Boolean B x 1 x H x W mask of the pixels whose label is one of the named regions."""
    ids = torch.tensor(label_ids(names), device=labels.device)
    return torch.isin(labels, ids).unsqueeze(1)
