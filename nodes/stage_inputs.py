"""Inputs of the two guidance stages, shared by each stage's one-stop node and SAMPLER node: the
images and masks that guide, each stage's settings as the core declares them, how to sample, and
the one check they need beyond their widgets' ranges (the repeat window's own)."""
from __future__ import annotations

from comfy_api.latest import io

from ..comfy_adapter import pixel_maps, sampling
from ..ssdiff_core import settings
from ..ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from ..ssdiff_core.identity import IdentityTerm
from ..ssdiff_core.schedule import RepeatWindow
from .types import ColourTransferType, FaceRecognitionType, ParsingType

SCRATCH_MASK_TOOLTIP = "1 = scratched or broken pixel. Leave empty for blur/fading only."


def setting_inputs(stage: type, optional: bool = False) -> list[io.Input]:
    """The widgets of a stage's settings, as the core declares them (ssdiff_core.settings): name,
    default, range, step and tooltip come from the stage's dataclass and nowhere else. `optional`:
    a prompt may leave them out (the declared default applies), as workflows saved before they
    existed do."""
    inputs = []
    for entry in settings.declared(stage):
        if isinstance(entry.default, int):
            inputs.append(io.Int.Input(entry.name, default=entry.default, min=entry.minimum, max=entry.maximum,
                                       tooltip=entry.tooltip, optional=optional))
        else:
            inputs.append(io.Float.Input(entry.name, default=entry.default, min=entry.minimum, max=entry.maximum,
                                         step=entry.step, tooltip=entry.tooltip, optional=optional))
    return inputs


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


def validate_repeat_window(s_start: float | None, s_end: float | None) -> bool | str:
    """The repeat window's own check (RepeatWindow); None: that end arrives through a link, and the
    window is checked when the node executes."""
    if s_start is None or s_end is None:
        return True
    try:
        RepeatWindow(start=s_start, end=s_end)
    except ValueError as error:
        return str(error)
    return True


def identity_inputs() -> list[io.Input]:
    """The identity term (ssdiff_core/identity.py): other photos of the same person. Optional and
    last on every node, so that workflows saved before it still run and keep their widgets' values
    in place."""
    return [
        FaceRecognitionType.Input("face_recognition", optional=True,
                                  tooltip="ArcFace (SSDiff Face Recognition Loader): the identity that "
                                          "reference_faces guide towards is measured with it"),
        io.Image.Input("reference_faces", optional=True,
                       tooltip="other photos of the same person, FFHQ-aligned (SSDiff Face Crop on them, with "
                               "no_face = refuse): the face is pulled towards their identity; needs "
                               "face_recognition"),
        *setting_inputs(IdentityTerm, optional=True),
    ]


def pseudo_reference_inputs() -> list[io.Input]:
    return [
        io.Image.Input("image", tooltip="aligned degraded face"),
        io.Mask.Input("scratch_mask", optional=True, tooltip=SCRATCH_MASK_TOOLTIP),
        *setting_inputs(PseudoReferenceGuidance),
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
        ParsingType.Input("parsing", optional=True,
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
        *setting_inputs(SelectiveGuidance),
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
