"""A stage's node inputs into the method's guidance description (B x C x H x W tensors at the
degraded face's size, padded to the model's multiple, and the settings the core declares), and a
one-stop stage's run: plan, build, sample, crop."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch

from ..comfy_adapter import managed, sampling
from ..priors.cap_vstnet_transfer import CapVstnetTransfer
from ..ssdiff_core.colour_transfer import ColourTransfer, masked_mean_std_transfer
from ..priors.identity import identity_embedder, reference_identity
from ..ssdiff_core.guidance import GuidanceTerm, PseudoReferenceGuidance, SelectiveGuidance
from ..ssdiff_core.identity import IdentityTerm
from ..ssdiff_core.masks import selective_masks
from ..ssdiff_core.sampler import Guidance
from ..ssdiff_core.settings import from_settings, split_settings
from ..ssdiff_core.variant import MethodVariant, variant_of
from . import boundary


def _scratch(scratch_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if scratch_mask is None:
        return torch.zeros_like(like[:, :1])
    scratch = boundary.mask_to_model(scratch_mask)
    boundary.require_batch(scratch, like.shape[0], "scratch_mask", "image")
    return boundary.match_size(scratch, like.shape[-2:], "scratch_mask")


def identity_terms(image: torch.Tensor, settings: Mapping[str, Any], reference_faces: torch.Tensor | None,
                   face_recognition: torch.nn.Module | None) -> tuple[GuidanceTerm, ...]:
    """The identity term of a stage (none without references or at weight 0, leaving the stage as
    it was): the references' mean ArcFace identity, the face at the image's own size inside the
    padded sample. `settings`: the term's declared settings, by input name."""
    term_settings, _ = split_settings(settings, IdentityTerm)
    weight = term_settings.get("identity_weight", IdentityTerm.weight)
    if reference_faces is None or weight == 0:
        return ()
    if face_recognition is None:
        raise ValueError("reference_faces are measured by a face recognition network: connect SSDiff Face "
                         "Recognition Loader to face_recognition, or disconnect reference_faces")
    height, width = image.shape[1:3]
    if height != width:
        raise ValueError(f"identity guidance compares aligned faces, which are square; image is {width} x {height} "
                         "px: give the face from SSDiff Face Crop, or disconnect reference_faces")
    references = boundary.image_to_rgb(reference_faces)
    if references.shape[-1] != references.shape[-2]:
        raise ValueError(f"reference_faces are {references.shape[-1]} x {references.shape[-2]} px, not aligned "
                         "faces: give the faces from SSDiff Face Crop run on the reference photos")
    managed.load(face_recognition)  # the term's private copy stays where it is made, for the whole stage
    return (from_settings(IdentityTerm, term_settings, embed=identity_embedder(face_recognition),
                          reference=reference_identity(face_recognition, references), face_size=(height, width)),)


def pseudo_reference_guidance(image: torch.Tensor, settings: Mapping[str, Any], reference_compat: bool,
                              scratch_mask: torch.Tensor | None = None, terms: tuple[GuidanceTerm, ...] = (),
                              pad_multiple: int = 1) -> PseudoReferenceGuidance:
    """Stage 1 from its node's inputs: the images at the degraded face's size, padded to the
    model's multiple; `settings` the stage's (and its terms') declared settings, by input name;
    `terms` its extra terms (identity_terms)."""
    degraded = boundary.image_to_model(image)
    scratch = _scratch(scratch_mask, degraded)
    _, stage_settings = split_settings(settings, IdentityTerm)
    return from_settings(PseudoReferenceGuidance, stage_settings,
                         degraded=boundary.pad_to_multiple(degraded, pad_multiple),
                         scratch=boundary.pad_to_multiple(scratch, pad_multiple), variant=variant_of(reference_compat),
                         terms=terms)


def _colour_transfer(colour_transfer: ColourTransfer | None, variant: MethodVariant) -> ColourTransfer:
    """The connected colour transfer (or the built-in one); CAP-VSTNet run as the variant runs it."""
    if colour_transfer is None:
        return masked_mean_std_transfer
    if isinstance(colour_transfer, CapVstnetTransfer):
        managed.load(colour_transfer.network)  # (offloaded later for the UNet, it computes where it is)
        return colour_transfer.for_variant(variant)
    return colour_transfer


def selective_guidance(image: torch.Tensor, coarse_restoration: torch.Tensor, pseudo_reference: torch.Tensor,
                       settings: Mapping[str, Any], reference_compat: bool, scratch_mask: torch.Tensor | None = None,
                       parsing: torch.Tensor | None = None, colour_reference: torch.Tensor | None = None,
                       colour_transfer: ColourTransfer | None = None, colour_region: torch.Tensor | None = None,
                       terms: tuple[GuidanceTerm, ...] = (), pad_multiple: int = 1) -> SelectiveGuidance:
    """Stage 2 from its node's inputs: every image, mask and parsing at the degraded face's size
    (resized with a warning where they differ), padded to the model's multiple; `settings` the
    stage's (and its terms') declared settings, by input name; `terms` its extra terms
    (identity_terms)."""
    degraded = boundary.image_to_model(image)
    batch, size = degraded.shape[0], degraded.shape[-2:]

    def face_image(value: torch.Tensor, name: str) -> torch.Tensor:
        image = boundary.image_to_model(value)
        boundary.require_batch(image, batch, name, "image")
        return boundary.pad_to_multiple(boundary.match_size(image, size, name), pad_multiple)

    labels = None
    if parsing is not None:
        boundary.require_batch(parsing, batch, "parsing", "image")
        labels = boundary.match_size(parsing.unsqueeze(1), size, "parsing", mode="nearest")
        labels = boundary.pad_to_multiple(labels, pad_multiple)[:, 0]
    scratch = boundary.pad_to_multiple(_scratch(scratch_mask, degraded), pad_multiple)
    region = None
    if colour_region is not None:
        region = boundary.mask_to_model(colour_region)
        boundary.require_batch(region, batch, "colour_region", "image")
        region = boundary.pad_to_multiple(boundary.match_size(region, size, "colour_region"), pad_multiple) > 0.5
    variant = variant_of(reference_compat)
    _, stage_settings = split_settings(settings, IdentityTerm)
    return from_settings(
        SelectiveGuidance, stage_settings,
        coarse=face_image(coarse_restoration, "coarse_restoration"),
        pseudo_reference=face_image(pseudo_reference, "pseudo_reference"),
        masks=selective_masks(scratch, labels),
        colour_reference=None if colour_reference is None else face_image(colour_reference, "colour_reference"),
        colour_transfer=_colour_transfer(colour_transfer, variant), colour_region=region, variant=variant,
        terms=terms)


def sample_stage(model, guidance_at: Callable[[int], Guidance], image: torch.Tensor, seed: int, steps: int,
                 base_sampler: sampling.BaseSampler, conditioning: sampling.Conditioning, vae=None,
                 latent_guidance: sampling.LatentGuidance = "vae_decoder") -> torch.Tensor:
    """What a stage's one-stop node returns, as an IMAGE at its image's size: the adapter plans the
    run (the model's space, the multiple image sides need, room for a step), the stage is built
    padded to that multiple (`guidance_at`), sampled, and cropped back here."""
    batch, (height, width) = image.shape[0], tuple(image.shape[1:3])
    plan = sampling.plan_faces(model, batch, (height, width), vae, latent_guidance)
    restored = sampling.sample_face(model, guidance_at(plan.multiple), plan, batch, seed, steps, base_sampler,
                                    conditioning, vae, latent_guidance)
    return boundary.model_to_image(restored[..., :height, :width])
