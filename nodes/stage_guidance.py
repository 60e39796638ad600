"""Each stage's own node inputs as one dataclass (its fields are the names stage_inputs declares,
a test holds the two together), and their conversion into the method's guidance description:
B x C x H x W tensors at the degraded face's size, padded to the model's multiple."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..comfy_adapter import sampling
from ..priors.cap_vstnet_transfer import CapVstnetTransfer
from ..ssdiff_core.colour_transfer import ColourTransfer, masked_mean_std_transfer
from ..ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from ..ssdiff_core.masks import selective_masks
from ..ssdiff_core.schedule import RepeatWindow
from ..ssdiff_core.variant import variant_of
from . import boundary


def _scratch(scratch_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if scratch_mask is None:
        return torch.zeros_like(like[:, :1])
    scratch = boundary.mask_to_model(scratch_mask)
    boundary.require_batch(scratch, like.shape[0], "scratch_mask", "image")
    return boundary.match_size(scratch, like.shape[-2:], "scratch_mask")


@dataclass(frozen=True)
class PseudoReferenceInputs:
    """Stage 1's inputs, as stage_inputs.pseudo_reference_inputs() declares them."""
    image: torch.Tensor
    scale: float
    repeats: int
    s_start: float
    s_end: float
    reference_compat: bool
    scratch_mask: torch.Tensor | None = None

    def guidance(self, pad_multiple: int = 1) -> PseudoReferenceGuidance:
        degraded = boundary.image_to_model(self.image)
        scratch = _scratch(self.scratch_mask, degraded)
        return PseudoReferenceGuidance(
            degraded=boundary.pad_to_multiple(degraded, pad_multiple),
            scratch=boundary.pad_to_multiple(scratch, pad_multiple),
            scale=self.scale, repeat=RepeatWindow(self.repeats, self.s_start, self.s_end),
            variant=variant_of(self.reference_compat))


@dataclass(frozen=True)
class SelectiveInputs:
    """Stage 2's inputs, as stage_inputs.selective_inputs() declares them."""
    image: torch.Tensor
    coarse_restoration: torch.Tensor
    pseudo_reference: torch.Tensor
    t1: float
    scale: float
    structure_weight: float
    reference_weight: float
    colour_weight: float
    repeats: int
    s_start: float
    s_end: float
    reference_compat: bool
    scratch_mask: torch.Tensor | None = None
    parsing: torch.Tensor | None = None
    colour_reference: torch.Tensor | None = None
    colour_transfer: ColourTransfer | None = None
    colour_region: torch.Tensor | None = None

    def _colour_transfer(self) -> ColourTransfer:
        """The connected colour transfer (or the built-in one); CAP-VSTNet as the released code
        runs it under reference_compat."""
        if self.colour_transfer is None:
            return masked_mean_std_transfer
        if self.reference_compat and isinstance(self.colour_transfer, CapVstnetTransfer):
            return self.colour_transfer.as_released_code()
        return self.colour_transfer

    def guidance(self, pad_multiple: int = 1) -> SelectiveGuidance:
        degraded = boundary.image_to_model(self.image)
        batch, size = degraded.shape[0], degraded.shape[-2:]

        def face_image(value: torch.Tensor, name: str) -> torch.Tensor:
            image = boundary.image_to_model(value)
            boundary.require_batch(image, batch, name, "image")
            return boundary.pad_to_multiple(boundary.match_size(image, size, name), pad_multiple)

        labels = None
        if self.parsing is not None:
            boundary.require_batch(self.parsing, batch, "parsing", "image")
            labels = boundary.match_size(self.parsing.unsqueeze(1), size, "parsing", mode="nearest")
            labels = boundary.pad_to_multiple(labels, pad_multiple)[:, 0]
        scratch = boundary.pad_to_multiple(_scratch(self.scratch_mask, degraded), pad_multiple)
        colour_region = None
        if self.colour_region is not None:
            region = boundary.mask_to_model(self.colour_region)
            boundary.require_batch(region, batch, "colour_region", "image")
            colour_region = boundary.pad_to_multiple(boundary.match_size(region, size, "colour_region"),
                                                     pad_multiple) > 0.5
        return SelectiveGuidance(
            coarse=face_image(self.coarse_restoration, "coarse_restoration"),
            pseudo_reference=face_image(self.pseudo_reference, "pseudo_reference"),
            masks=selective_masks(scratch, labels),
            colour_reference=None if self.colour_reference is None else face_image(self.colour_reference,
                                                                                    "colour_reference"),
            colour_transfer=self._colour_transfer(),
            colour_region=colour_region,
            t1=self.t1, scale=self.scale, structure_weight=self.structure_weight,
            reference_weight=self.reference_weight, colour_weight=self.colour_weight,
            repeat=RepeatWindow(self.repeats, self.s_start, self.s_end), variant=variant_of(self.reference_compat))


def sample_stage(model, stage: PseudoReferenceInputs | SelectiveInputs, seed: int, steps: int,
                 base_sampler: sampling.BaseSampler, conditioning: sampling.Conditioning, vae=None,
                 latent_guidance: sampling.LatentGuidance = "vae_decoder") -> torch.Tensor:
    """What a stage's one-stop node returns: the stage sampled at its image's size, as an IMAGE."""
    restored = sampling.sample_face(model, stage.guidance, stage.image.shape[0], tuple(stage.image.shape[1:3]),
                                    seed, steps, base_sampler, conditioning, vae, latent_guidance)
    return boundary.model_to_image(restored)
