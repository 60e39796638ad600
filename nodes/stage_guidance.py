"""The stage nodes' inputs (IMAGE, MASK, parsing) as the method's guidance descriptions: B x C x H x W
tensors at the degraded face's size, padded to the model's multiple."""
from __future__ import annotations

import torch

from ..ssdiff_core.colour_transfer import masked_mean_std_transfer
from ..ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from ..ssdiff_core.masks import selective_masks
from ..ssdiff_core.schedule import RepeatWindow
from ..ssdiff_core.variant import variant_of
from . import boundary


def _scratch(scratch_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if scratch_mask is None:
        return torch.zeros_like(like[:, :1])
    return boundary.match_size(boundary.mask_to_model(scratch_mask, "scratch_mask"), like.shape[-2:], "scratch_mask")


def pseudo_reference_guidance(image: torch.Tensor, scale: float, repeats: int, s_start: float,
                              s_end: float, reference_compat: bool,
                              scratch_mask: torch.Tensor | None = None,
                              pad_multiple: int = 1) -> PseudoReferenceGuidance:
    degraded = boundary.image_to_model(image, "image")
    scratch = _scratch(scratch_mask, degraded)
    return PseudoReferenceGuidance(
        degraded=boundary.pad_to_multiple(degraded, pad_multiple),
        scratch=boundary.pad_to_multiple(scratch, pad_multiple),
        scale=scale, repeat=RepeatWindow(repeats, s_start, s_end), variant=variant_of(reference_compat))


def selective_guidance(image: torch.Tensor, coarse_restoration: torch.Tensor,
                       pseudo_reference: torch.Tensor, t1: float, scale: float,
                       structure_weight: float, reference_weight: float, colour_weight: float,
                       repeats: int, s_start: float, s_end: float, reference_compat: bool,
                       scratch_mask: torch.Tensor | None = None, parsing: torch.Tensor | None = None,
                       colour_reference: torch.Tensor | None = None, colour_transfer=None,
                       colour_region: torch.Tensor | None = None, pad_multiple: int = 1) -> SelectiveGuidance:
    degraded = boundary.image_to_model(image, "image")
    size = degraded.shape[-2:]

    def face_image(value: torch.Tensor, name: str) -> torch.Tensor:
        return boundary.pad_to_multiple(boundary.match_size(boundary.image_to_model(value, name), size, name),
                                      pad_multiple)

    labels = None
    if parsing is not None:
        labels = boundary.match_size(parsing.unsqueeze(1), size, "parsing", mode="nearest")
        labels = boundary.pad_to_multiple(labels, pad_multiple)[:, 0]
    scratch = boundary.pad_to_multiple(_scratch(scratch_mask, degraded), pad_multiple)
    return SelectiveGuidance(
        coarse=face_image(coarse_restoration, "coarse_restoration"),
        pseudo_reference=face_image(pseudo_reference, "pseudo_reference"),
        masks=selective_masks(scratch, labels),
        colour_reference=None if colour_reference is None else face_image(colour_reference, "colour_reference"),
        colour_transfer=colour_transfer or masked_mean_std_transfer,
        colour_region=None if colour_region is None else boundary.pad_to_multiple(
            boundary.match_size(boundary.mask_to_model(colour_region, "colour_region"), size, "colour_region"),
            pad_multiple) > 0.5,
        t1=t1, scale=scale, structure_weight=structure_weight, reference_weight=reference_weight,
        colour_weight=colour_weight, repeat=RepeatWindow(repeats, s_start, s_end),
        variant=variant_of(reference_compat))
