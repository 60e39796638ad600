"""Inputs of the two guidance stages, shared by each stage's one-stop node and SAMPLER node, and
the one check they need beyond their widgets' ranges."""
from __future__ import annotations

from comfy_api.latest import io

from ..comfy_adapter import pixel_maps, sampling
from .types import ColourTransferType, ParsingType

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


def validate_repeat_window(s_start: float | None, s_end: float | None) -> bool | str:
    """None: that end arrives through a link, and the window is checked when the node executes."""
    if s_start is None or s_end is None:
        return True
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
