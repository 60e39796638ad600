"""Inputs shared by the one-stop nodes and the SAMPLER nodes of each stage, and the conversion
of those inputs into the core's guidance descriptions."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import pixel_maps, sampling
from ..ssdiff_core.colour_transfer import masked_mean_std_transfer
from ..ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from ..ssdiff_core.masks import selective_masks
from ..ssdiff_core.schedule import RepeatWindow
from . import boundary
from .colour import ColourTransferType

Parsing = io.Custom("SSDIFF_PARSING")
"""A face parsing: B x H x W label map in CelebAMask-HQ ids (0 background ... 18 hat)."""

SCRATCH_MASK_TOOLTIP = "1 = scratched or broken pixel. Leave empty for blur/fading only."


def repeat_inputs() -> list[io.Input]:
    return [
        io.Int.Input("repeats", default=1, min=1, max=10,
                     tooltip="N: guided steps at each noise level inside (s_end, s_start)"),
        io.Float.Input("s_start", default=1.0, min=0.0, max=1.0, step=0.01,
                       tooltip="upper end of the repeat window, as a fraction of the schedule"),
        io.Float.Input("s_end", default=0.7, min=0.0, max=1.0, step=0.01,
                       tooltip="lower end of the repeat window, as a fraction of the schedule"),
    ]


def base_sampler_input() -> io.Input:
    return io.Combo.Input(
        "base_sampler", options=list(sampling.BASE_SAMPLERS), default=sampling.LEARNED_VARIANCE_DDPM,
        tooltip="the step the guidance corrects: SSDiff's ancestral DDPM step with the model's "
                "learned variance (the paper), or a single-step ComfyUI sampler")


def latent_inputs() -> list[io.Input]:
    return [
        io.Vae.Input("vae", optional=True,
                     tooltip="for a latent MODEL (SD1.5, SDXL, + LoRA): its VAE; not needed for the face DDPM"),
        io.Combo.Input("latent_guidance", options=list(pixel_maps.LATENT_GUIDANCE), default="vae_decoder",
                       tooltip="latent MODEL only. vae_decoder: losses on the VAE-decoded x0, gradient "
                               "through the decoder (exact, memory-heavy; bf16 halves it). "
                               "latent_rgb_approximation: a linear latent->RGB map (fast, no VAE memory, "
                               "approximate colours, no fine detail)"),
    ]


def compat_input() -> io.Input:
    return io.Boolean.Input(
        "reference_compat", default=False,
        tooltip="Reproduce the authors' released code, defects included (absolute timesteps, inert "
                "reference term, batch-wide norms) instead of the paper")


def validate_repeat_window(s_start: float, s_end: float) -> bool | str:
    if not 0.0 <= s_end <= s_start <= 1.0:
        return f"need 0 <= s_end <= s_start <= 1 (fractions of the schedule), got s_start={s_start}, s_end={s_end}"
    return True


def pseudo_reference_inputs() -> list[io.Input]:
    return [
        io.Image.Input("image", tooltip="aligned degraded face"),
        io.Mask.Input("scratch_mask", optional=True, tooltip=SCRATCH_MASK_TOOLTIP),
        io.Float.Input("scale", default=0.001, min=0.0, max=1.0, step=0.0001,
                       tooltip="s1: guidance step relative to the sampler's own step"),
        *repeat_inputs(),
        base_sampler_input(),
        *latent_inputs(),
        compat_input(),
    ]


def selective_inputs() -> list[io.Input]:
    return [
        io.Image.Input("image", tooltip="aligned degraded face"),
        io.Image.Input("coarse_restoration", tooltip="R: e.g. CodeFormer (w = 0.5) of the image"),
        io.Image.Input("pseudo_reference", tooltip="P: output of SSDiff Pseudo Reference"),
        io.Mask.Input("scratch_mask", optional=True, tooltip=SCRATCH_MASK_TOOLTIP),
        Parsing.Input("parsing", optional=True,
                      tooltip="face parsing of the coarse restoration; without it every pixel "
                              "counts as skin"),
        io.Image.Input("colour_reference", optional=True,
                       tooltip="recolour the face towards this image instead of the pseudo-reference"),
        ColourTransferType.Input("colour_transfer", optional=True,
                                 tooltip="the transfer that builds the colour target at T1: CAP-VSTNet "
                                         "from its loader; default: built-in masked mean/std"),
        io.Mask.Input("colour_region", optional=True,
                      tooltip="where the colour term acts, e.g. FaceParse's mask of 'face' for a stylised "
                              "face; default: all but background, cloth and hair"),
        io.Float.Input("t1", default=0.4, min=0.01, max=0.99, step=0.01,
                       tooltip="T1 as a fraction of the schedule: reference structure above, colour below"),
        io.Float.Input("scale", default=0.0035, min=0.0, max=1.0, step=0.0001,
                       tooltip="s2: guidance step relative to the sampler's own step"),
        io.Float.Input("structure_weight", default=1.0, min=0.0, max=1000.0, step=0.1),
        io.Float.Input("reference_weight", default=100.0, min=0.0, max=10000.0, step=1.0),
        io.Float.Input("colour_weight", default=20.0, min=0.0, max=1000.0, step=0.1),
        *repeat_inputs(),
        base_sampler_input(),
        *latent_inputs(),
        compat_input(),
    ]


def sampling_inputs() -> list[io.Input]:
    """Seed, step count and (latent models) conditioning of the one-stop nodes."""
    return [
        io.Conditioning.Input("positive", optional=True, tooltip="latent MODEL only, as in KSampler"),
        io.Conditioning.Input("negative", optional=True, tooltip="latent MODEL only, as in KSampler"),
        io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1,
                       tooltip="classifier-free guidance of a latent MODEL; 1.0 for the face DDPM"),
        io.Int.Input("seed", default=4321, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="use the same seed for both stages; item i of a batch uses seed + i"),
        io.Int.Input("steps", default=100, min=1, max=1000, tooltip="respaced DDPM steps; the paper uses 1000"),
    ]


def sample_face(model, guidance, image: torch.Tensor, seed: int, steps: int, base_sampler: str,
                conditioning: sampling.Conditioning, vae=None, latent_guidance: str = "vae_decoder") -> torch.Tensor:
    """Samples at the guidance's (padded) size and returns an IMAGE at `image`'s size."""
    height, width = image.shape[1:3]
    sample = sampling.sample_guided(model, guidance, (image.shape[0], 3, *guidance.sample_size), seed, steps,
                                base_sampler, conditioning, vae, latent_guidance)
    return boundary.model_to_image(sample[..., :height, :width])


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
        scale=scale, repeat=RepeatWindow(repeats, s_start, s_end), reference_compat=reference_compat)


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
        reference_compat=reference_compat)
