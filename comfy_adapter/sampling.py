"""SSDiff's guided sampler inside ComfyUI: a KSAMPLER for SamplerCustom, the base steps it can
correct, and one-stop sampling with ComfyUI's progress bar, previews and Cancel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import latent_preview

from ..models.guided_diffusion import FaceUNetConfig
from ..ssdiff_core.pixel_space import IdentityMap, PixelMap
from ..ssdiff_core.pseudo_targets import PseudoTargetGuidance, partial_grid, start_sample
from ..ssdiff_core.sampler import Guidance, ItemNoise, StepFunction, sample_ssdiff
from ..ssdiff_core.schedule import respaced_sigmas
from ..ssdiff_core.variant import PAPER, MethodVariant
from .device import check_interrupt, compute_device, require_total_memory
from .face_model import empty_conditioning, schedule_sigmas
from .pixel_maps import LATENT_GUIDANCE, LatentGuidance, is_pixel_model, latent_pixel_map, vae_scale


BaseSampler = Literal["ddpm_learned_variance", "euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral",
                      "dpmpp_2s_ancestral"]
LEARNED_VARIANCE_DDPM: BaseSampler = "ddpm_learned_variance"
SINGLE_STEP_SAMPLERS: tuple[BaseSampler, ...] = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral",
                                                 "dpmpp_2s_ancestral")
"""ComfyUI samplers that need no state across steps: the guidance correction can follow each of
their steps. Multistep samplers (dpmpp_2m, lms, ...) would lose their history."""
BASE_SAMPLERS: tuple[BaseSampler, ...] = (LEARNED_VARIANCE_DDPM, *SINGLE_STEP_SAMPLERS)


def base_step(name: BaseSampler) -> StepFunction | None:
    """One step of a ComfyUI sampler between two noise levels; None for SSDiff's own DDPM step."""
    if name == LEARNED_VARIANCE_DDPM:
        return None
    if name not in SINGLE_STEP_SAMPLERS:
        raise ValueError(f"base sampler '{name}' is not one of {', '.join(BASE_SAMPLERS)}")
    function = getattr(k_diffusion_sampling, f"sample_{name}")
    ancestral = "ancestral" in name

    def step(model, x, sigma_pair, extra_args, draw_noise):
        noise = {"noise_sampler": lambda sigma, sigma_next: draw_noise()} if ancestral else {}
        return function(model, x, sigma_pair, extra_args=extra_args, disable=True, **noise)
    return step


@dataclass(frozen=True)
class ModelSpace:
    """The sampled model's side of a guided run, worked out once per run: how x0 reaches the
    pixel losses, whether x0 is clamped to [-1, 1] (pixel models), and its discrete noise levels."""
    pixel_map: PixelMap
    pixel_space: bool
    discrete_sigmas: torch.Tensor


def model_space(base_model: comfy.model_base.BaseModel, vae: comfy.sd.VAE | None,
                latent_guidance: LatentGuidance) -> ModelSpace:
    pixel_space = is_pixel_model(base_model)
    pixel_map = IdentityMap() if pixel_space else latent_pixel_map(base_model.latent_format, vae, latent_guidance)
    return ModelSpace(pixel_map, pixel_space, schedule_sigmas(base_model))


GUIDANCE_IMAGES = 16
"""Image-sized float32 tensors a guided step holds beside the network: x_t, x0, the gradient, the
targets and masks of the losses (counted generously)."""


def require_room_for_step(network: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Refuses, before anything is allocated, a face DDPM run at a size whose guided step cannot fit
    in the device's whole memory (unloading other models would not help). Other networks are left
    to ComfyUI's memory management."""
    config = getattr(network, "config", None)
    if not isinstance(config, FaceUNetConfig):
        return
    batch, _, height, width = shape
    device = compute_device()
    needed = (config.forward_bytes(batch, height, width, torch.finfo(dtype).bits // 8,
                                   attention_maps=device.type != "cuda")
              + GUIDANCE_IMAGES * batch * 3 * height * width * 4)
    require_total_memory(needed, f"a guided step of the face DDPM on a batch of {batch} at {width}x{height}",
                         "the face DDPM works on aligned 512 x 512 faces, so put SSDiff Face Crop before this node "
                         "(and SSDiff Face Paste after), or scale the image down")


def require_matching_latent(base_model: comfy.model_base.BaseModel, space: ModelSpace, x: torch.Tensor) -> None:
    """A latent of another model's kind is refused by name, before the network fails on it."""
    channels = base_model.latent_format.latent_channels
    if x.shape[1] == channels:
        return
    if space.pixel_space:
        raise ValueError(f"the face DDPM samples pixels ({channels} channels), but this latent has {x.shape[1]} "
                         "channels, as a Stable Diffusion-type VAE encodes them: encode the image with the "
                         "'pixel VAE' output of SSDiff Face Diffusion Loader")
    raise ValueError(f"this MODEL samples {channels}-channel latents, but this latent has {x.shape[1]} channels "
                     f"({'the face DDPM pixel VAE makes 3' if x.shape[1] == 3 else 'another VAE made it'}): encode "
                     "the image with the VAE of the model's own checkpoint")


def _host_sampler_function(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           guidance: Guidance | None = None, base_sampler: BaseSampler = LEARNED_VARIANCE_DDPM,
                           vae: comfy.sd.VAE | None = None, latent_guidance: LatentGuidance = "vae_decoder",
                           step_noise: ItemNoise | None = None, space: ModelSpace | None = None):
    if space is None:  # SamplerCustom: the sampler is all this run knows of; plan_faces checked a one-stop run
        base_model = model.inner_model.inner_model
        space = model_space(base_model, vae, latent_guidance)
        require_matching_latent(base_model, space, x)
        require_room_for_step(base_model.diffusion_model, tuple(x.shape), base_model.get_dtype())
    try:
        return sample_ssdiff(model, x, sigmas, extra_args, callback, disable, guidance=guidance,
                             discrete_sigmas=space.discrete_sigmas, step_noise=step_noise,
                             base_step=base_step(base_sampler), pixel_map=space.pixel_map,
                             clamp_x0=space.pixel_space, interrupt=check_interrupt)
    except torch.OutOfMemoryError as error:
        # Still an OutOfMemoryError, so that ComfyUI unloads its models and adds its own tips.
        raise torch.OutOfMemoryError(
            f"SSDiff guidance ran out of memory on a batch of {x.shape[0]} at {tuple(x.shape[-2:])}. Lower-memory "
            "options: fewer faces per batch (SSDiff Face Crop selection 'largest' or 'index'), weight_dtype "
            "bf16 in the face diffusion loader, latent_guidance 'vae_decoder_bf16' or "
            "'latent_rgb_approximation' for latent models, or ComfyUI's --lowvram") from error


def guided_sampler(guidance: Guidance, base_sampler: BaseSampler = LEARNED_VARIANCE_DDPM, vae: comfy.sd.VAE | None = None,
                   latent_guidance: LatentGuidance = "vae_decoder",
                   space: ModelSpace | None = None) -> comfy.samplers.KSAMPLER:
    """A SAMPLER for SamplerCustom / SamplerCustomAdvanced that runs SSDiff's guided steps on top
    of SSDiff's learned-variance DDPM step or of a single-step ComfyUI sampler. With a latent
    model, `vae` and `latent_guidance` say how x0 reaches the pixel losses; `space`, where the
    caller already worked it out for the model being sampled."""
    base_step(base_sampler)  # refuse an unknown name now, not mid-sampling
    if latent_guidance not in LATENT_GUIDANCE:
        raise ValueError(f"latent_guidance must be one of {', '.join(LATENT_GUIDANCE)}, got '{latent_guidance}'")
    return comfy.samplers.KSAMPLER(_host_sampler_function, extra_options={
        "guidance": guidance, "base_sampler": base_sampler, "vae": vae, "latent_guidance": latent_guidance,
        "space": space})


def pixel_multiple(model: comfy.model_patcher.ModelPatcher, space: ModelSpace, vae: comfy.sd.VAE | None) -> int:
    """Image sides must be multiples of this: the network's downsampling (x the VAE's)."""
    network = model.get_model_object("diffusion_model")
    factor = getattr(network, "downsampling_factor", 8)
    return factor if space.pixel_space else factor * vae_scale(vae)


@dataclass(frozen=True)
class Conditioning:
    """What a latent model samples under, as in KSampler; the face DDPM needs none of it."""
    positive: list | None = None
    negative: list | None = None
    cfg: float = 1.0


@dataclass(frozen=True)
class FacePlan:
    """What a one-stop run samples in: the model's space, and the multiple its image sides need."""
    space: ModelSpace
    multiple: int


def plan_faces(model: comfy.model_patcher.ModelPatcher, batch: int, size: tuple[int, int],
               vae: comfy.sd.VAE | None = None, latent_guidance: LatentGuidance = "vae_decoder") -> FacePlan:
    """Works out the model's space and multiple for `batch` faces of `size` (height, width), and
    refuses a face DDPM step too big for the device before any image-sized tensor is made."""
    space = model_space(model.model, vae, latent_guidance)
    if space.pixel_space:
        require_room_for_step(model.get_model_object("diffusion_model"), (batch, 3, *size), model.model.get_dtype())
    return FacePlan(space, pixel_multiple(model, space, vae))


def sample_face(model: comfy.model_patcher.ModelPatcher, guidance: Guidance, plan: FacePlan, batch: int, seed: int,
                steps: int, base_sampler: BaseSampler = LEARNED_VARIANCE_DDPM,
                conditioning: Conditioning = Conditioning(), vae: comfy.sd.VAE | None = None,
                latent_guidance: LatentGuidance = "vae_decoder") -> torch.Tensor:
    """One-stop sampling of `batch` faces at the guidance's sample size (a multiple of
    `plan.multiple`) from pure noise over `steps` respaced DDPM steps; item i of the batch uses
    seed + i. A latent model samples latents under the given conditioning, decoded by `vae`.
    Returns B x 3 x H x W in [-1, 1] at the sample size."""
    space = plan.space
    sample_height, sample_width = guidance.sample_size
    if space.pixel_space:
        shape = (batch, 3, sample_height, sample_width)
        positive = negative = empty_conditioning()
    else:
        if vae is None:
            raise ValueError("a latent model (SD1.5, SDXL, ...) needs its VAE to decode its samples: connect the "
                             "checkpoint's VAE")
        if conditioning.positive is None or conditioning.negative is None:
            raise ValueError("a latent model needs positive and negative conditioning (e.g. CLIPTextEncode)")
        scale = vae_scale(vae)
        shape = (batch, model.model.latent_format.latent_channels, sample_height // scale, sample_width // scale)
        positive, negative = conditioning.positive, conditioning.negative
    sigmas = respaced_sigmas(steps, space.discrete_sigmas)
    noise = ItemNoise(seed, shape).draw()
    callback = latent_preview.prepare_callback(model, len(sigmas) - 1)
    samples = comfy.sample.sample_custom(
        model, noise, conditioning.cfg, guided_sampler(guidance, base_sampler, vae, latent_guidance, space), sigmas,
        positive, negative, torch.zeros(shape), callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    if not space.pixel_space:
        samples = vae.decode(samples).movedim(-1, 1)[:, :3].float() * 2 - 1
    return samples.clamp(-1, 1)


def plan_pseudo_targets(model: comfy.model_patcher.ModelPatcher) -> FacePlan:
    """Pseudo-targets are sampled by the face DDPM: its space and multiple; a latent model refused."""
    space = model_space(model.model, None, "vae_decoder")
    if not space.pixel_space:
        raise ValueError("pseudo-targets are sampled by the face DDPM (SSDiff Face Diffusion Loader), a pixel-space "
                         "MODEL: this one samples latents")
    return FacePlan(space, pixel_multiple(model, space, None))


def sample_pseudo_targets(model: comfy.model_patcher.ModelPatcher, guidance: PseudoTargetGuidance, plan: FacePlan,
                          seed: int, steps: int, start: float, variant: MethodVariant = PAPER) -> torch.Tensor:
    """One-stop pseudo-targets of the guidance's coarse restorations (B x 3 x H x W in [-1, 1],
    padded to `plan.multiple`): each diffused to `start` of the schedule with its own noise (item
    i: seed + i) and sampled back over the rest of `steps` respaced DDPM steps. Returns
    B x 3 x H x W in [-1, 1] at the guidance's sample size."""
    space = plan.space
    shape = (guidance.coarse.shape[0], 3, *guidance.sample_size)
    require_room_for_step(model.get_model_object("diffusion_model"), shape, model.model.get_dtype())
    sigmas, first, noised = partial_grid(respaced_sigmas(steps, space.discrete_sigmas), space.discrete_sigmas,
                                         start, variant)
    x_start = start_sample(guidance.coarse.float(), ItemNoise(seed, shape).draw(), first, noised)
    positive = negative = empty_conditioning()
    samples = comfy.sample.sample_custom(
        model, torch.zeros(shape), 1.0, guided_sampler(guidance, space=space), sigmas, positive, negative, x_start,
        callback=latent_preview.prepare_callback(model, len(sigmas) - 1),
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return samples.clamp(-1, 1)
