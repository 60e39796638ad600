"""The one adapter between SSDiff's core and ComfyUI: model folders, the face DDPM as a ComfyUI
MODEL, the guided sampler as a SAMPLER, and one-stop sampling with progress, previews and
interruption. Everything else in ssdiff_core is free of ComfyUI."""
from __future__ import annotations

import copy
import logging
import os
import weakref
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.latent_formats
import comfy.ldm.modules.diffusionmodules.util as diffusion_util
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.supported_models_base
import comfy.utils
import folder_paths
import latent_preview

from ..models.guided_diffusion import FaceUNet, FaceUNetConfig
from .pixel_space import IdentityMap, LinearRGBMap, PixelMap, ToPixels
from .sampler import VARIANCE_SINK_KEY, Guidance, ItemNoise, StepFunction, sample_ssdiff
from .schedule import respaced_sigmas

SSDIFF_FOLDER = "ssdiff"
FACE_DETECTION_FOLDER = "facedetection"
FACE_RESTORE_FOLDER = "facerestore_models"
MODEL_FOLDERS = (SSDIFF_FOLDER, FACE_DETECTION_FOLDER, FACE_RESTORE_FOLDER)
"""models/ssdiff for the method's own files; the other two are the folders ComfyUI's face packs
(ReActor, facerestore_cf) already use, so users' existing files are found."""


@dataclass(frozen=True)
class ModelFile:
    """A kind of checkpoint a loader reads: where it lives and where users get it."""
    what: str
    folders: tuple[str, ...]
    expected: str
    source: str

    def choices(self) -> list[str]:
        return sorted({name for folder in self.folders for name in folder_paths.get_filename_list(folder)})


FACE_DDPM = ModelFile(
    "guided-diffusion face DDPM checkpoint", (SSDIFF_FOLDER,), "iddpm_ffhq512_ema500000.pth",
    "https://github.com/zsyOAOA/DifFace/releases/download/V1.0/iddpm_ffhq512_ema500000.pth "
    "(or the SSDiff / PGDiff Google Drive links)")
FACE_DDPM_MARKER_KEYS = ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight")

FACE_DETECTOR = ModelFile(
    "RetinaFace face detector", (FACE_DETECTION_FOLDER,),
    "detection_Resnet50_Final.pth (or detection_mobilenet0.25_Final.pth)",
    "https://github.com/xinntao/facexlib/releases/tag/v0.1.0")

FACE_PARSER = ModelFile(
    "face parser", (FACE_DETECTION_FOLDER, SSDIFF_FOLDER),
    "parsing_parsenet.pth, parsing_bisenet.pth (models/facedetection) or resnet34.pt (models/ssdiff)",
    "facexlib releases v0.2.2 (parsing_parsenet.pth) and v0.2.0 (parsing_bisenet.pth) at "
    "https://github.com/xinntao/facexlib/releases; resnet34.pt from https://github.com/yakhyo/face-parsing/releases "
    "(tag 'weights', formerly v0.0.1) or the SSDiff Google Drive")
SCRATCH_DETECTOR = ModelFile(
    "scratch detector", (SSDIFF_FOLDER,), "FT_Epoch_latest.pt",
    "Bringing-Old-Photos-Back-to-Life release v1.0, global_checkpoints.zip "
    "(https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases): Global/checkpoints/detection/FT_Epoch_latest.pt")
COLOUR_TRANSFER_NETWORK = ModelFile(
    "CAP-VSTNet colour-transfer network", (SSDIFF_FOLDER,), "photo_image.pt",
    "CAP-VSTNet (https://github.com/linfengWen98/CAP-VSTNet, checkpoints on its Google Drive) or "
    "the SSDiff repository's CAP_VSTNet/checkpoints/photo_image.pt")
FACE_RESTORER = ModelFile(
    "face restoration model", (FACE_RESTORE_FOLDER,), "codeformer.pth (or GFPGANv1.4.pth, RestoreFormer.pth)",
    "CodeFormer release v0.1.0 (https://github.com/sczhou/CodeFormer/releases); GFPGAN releases "
    "(https://github.com/TencentARC/GFPGAN/releases)")

WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def register_model_folders() -> None:
    """Adds models/<folder> for each of MODEL_FOLDERS, keeping any paths already registered (by
    extra_model_paths.yaml or another pack) and accepting the usual checkpoint extensions."""
    for folder in MODEL_FOLDERS:
        default = os.path.join(folder_paths.models_dir, folder)
        paths = list(folder_paths.folder_names_and_paths.get(folder, ([], set()))[0])
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[folder] = (paths, set(folder_paths.supported_pt_extensions))


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def check_interrupt() -> None:
    """Raises ComfyUI's interruption when the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class CheckpointError(ValueError):
    """A model file that is missing or is not what the loader expects."""


def model_path(kind: ModelFile, name: str) -> str:
    """The full path of `name` in the kind's folders; refuses names that leave them."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise CheckpointError(f"{kind.what} name '{name}' must be a file inside "
                              f"models/{kind.folders[0]}, not a path out of it")
    for folder in kind.folders:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return path
    folders = ", ".join(path for folder in kind.folders for path in folder_paths.get_folder_paths(folder))
    raise CheckpointError(f"{kind.what} '{name}' not found in {folders}. Put {kind.expected} there; "
                          f"get it from {kind.source}")


def read_state_dict(kind: ModelFile, path: str, marker_keys: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Reads a checkpoint without running pickled code, unwraps the usual containers, strips a
    'module.' prefix and checks that the architecture's marker keys are there."""
    try:
        state_dict = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as error:
        raise CheckpointError(f"could not read '{path}' as a {kind.what}: it is damaged, not a checkpoint, "
                              f"or needs code to load (refused: only tensors are read; {type(error).__name__}). "
                              f"Expected {kind.expected} from {kind.source}") from error
    for container in ("params_ema", "params", "state_dict", "model_state", "model", "net"):
        if isinstance(state_dict.get(container), dict):
            state_dict = state_dict[container]
            break
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()
                  if isinstance(value, torch.Tensor)}
    missing = [key for key in marker_keys if key not in state_dict]
    if missing:
        found = ", ".join(list(state_dict)[:4]) or "no tensors"
        raise CheckpointError(f"'{os.path.basename(path)}' is not a {kind.what} (it lacks "
                              f"{', '.join(missing)}; found {found}, ...). Expected {kind.expected} "
                              f"from {kind.source}")
    return state_dict


Built = TypeVar("Built")


def load_checkpoint(kind: ModelFile, name: str, build: Callable[[dict[str, torch.Tensor]], Built],
                    marker_keys: tuple[str, ...] = ()) -> Built:
    """Reads the file safely and builds its network; a file the builder refuses gets an error
    naming the file, the file expected and where to get it."""
    state_dict = read_state_dict(kind, model_path(kind, name), marker_keys)
    try:
        return build(state_dict)
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"'{name}' is not a usable {kind.what}: {error}. Expected {kind.expected} "
                              f"from {kind.source}") from error


class FacePixelFormat(comfy.latent_formats.LatentFormat):
    """Pixel space: the 'latent' is the RGB image in [-1, 1]; previews show it as is."""
    latent_channels = 3
    latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


class FaceDDPMConfig(comfy.supported_models_base.BASE):
    unet_config = {}
    unet_extra_config = {}
    # LDM naming: "sqrt_linear" is linearly spaced betas (OpenAI's "linear" schedule).
    sampling_settings = {"beta_schedule": "sqrt_linear", "linear_start": 1e-4,
                         "linear_end": 0.02, "timesteps": 1000}
    latent_format = FacePixelFormat
    memory_usage_factor = 0.05
    supported_inference_dtypes = [torch.float32, torch.bfloat16, torch.float16]


class HostFaceUNet(FaceUNet):
    """The face UNet with the diffusion_model calling convention of ComfyUI: returns eps and
    hands the full output (eps + learned-variance channels) to the sampler's VarianceSink."""

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context=None, control=None,
                transformer_options: dict | None = None, **kwargs) -> torch.Tensor:
        output = super().forward(x, timesteps)
        options = transformer_options or {}
        sink = options.get(VARIANCE_SINK_KEY)
        if sink is not None:
            sink.store(output, options.get("cond_or_uncond"))
        return output[:, : self.config.in_channels]


def build_face_unet(state_dict: dict[str, torch.Tensor]) -> HostFaceUNet:
    cross_attention = [key for key in state_dict if ".transformer_blocks." in key]
    if cross_attention:
        raise CheckpointError(
            f"it holds a text-conditioned UNet of the Stable Diffusion kind ({cross_attention[0]}, ...), not the "
            "unconditional face DDPM: load it with ComfyUI's Load Checkpoint or Load Diffusion Model and connect "
            "its MODEL (and VAE) to the SSDiff nodes instead")
    config = FaceUNetConfig.from_state_dict(state_dict)
    with torch.device("meta"):
        unet = HostFaceUNet(config)
    try:
        result = unet.load_state_dict(state_dict, strict=False, assign=True)
    except RuntimeError as error:
        mismatches = [line.strip() for line in str(error).splitlines() if line.strip().startswith("size mismatch")]
        raise CheckpointError(f"its tensors do not fit the face UNet their names describe ({config}): "
                              f"{'; '.join(mismatches[:3]) or error}") from error
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"the checkpoint does not match the face UNet it describes ({config}): "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return unet.float().eval()


def face_ddpm_model(unet: HostFaceUNet, weight_dtype: torch.dtype = torch.float32) -> comfy.model_patcher.ModelPatcher:
    """Wraps the network as a ComfyUI MODEL: eps prediction, 1000 linear betas, pixel space."""
    config = FaceDDPMConfig({"disable_unet_model_creation": True})
    offload_device = comfy.model_management.unet_offload_device()
    model = comfy.model_base.BaseModel(config, comfy.model_base.ModelType.EPS, device=offload_device)
    model.diffusion_model = unet.to(device=offload_device, dtype=weight_dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=offload_device)


def load_face_ddpm(name: str, weight_dtype: str = "fp32") -> comfy.model_patcher.ModelPatcher:
    unet = load_checkpoint(FACE_DDPM, name, build_face_unet, FACE_DDPM_MARKER_KEYS)
    logging.info("SSDiff: loaded face DDPM %s (%s)", name, unet.config)
    model = face_ddpm_model(unet, WEIGHT_DTYPES[weight_dtype])
    # How ComfyUI (0.33 and later) rebuilds an independent copy of a MODEL: clone(force_deepcopy=True)
    # in its training nodes, a copy per GPU, a non-dynamic delegate under dynamic VRAM.
    model.cached_patcher_init = (reload_face_ddpm, (name, weight_dtype))
    return model


def reload_face_ddpm(name: str, weight_dtype: str, disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """ComfyUI's cached_patcher_init call: the face MODEL is a plain ModelPatcher, never a dynamic
    one (its network has no comfy.ops layers to stream), so `disable_dynamic` changes nothing."""
    return load_face_ddpm(name, weight_dtype)


def pixel_space_vae() -> comfy.sd.VAE:
    """ComfyUI's pixel-space VAE (the VAELoader 'pixel_space' entry): IMAGE <-> [-1, 1] latent."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def empty_conditioning() -> list:
    return [[torch.zeros(1, 1, 8), {}]]


def schedule_sigmas(base_model: comfy.model_base.BaseModel) -> torch.Tensor:
    """The model's discrete noise levels in float64, rebuilt from its beta schedule (ComfyUI
    keeps them in float32); its own float32 levels where the schedule is not a plain one."""
    stored = base_model.model_sampling.sigmas.detach().cpu()
    settings = base_model.model_config.sampling_settings
    try:
        betas = diffusion_util.make_beta_schedule(
            settings.get("beta_schedule", "linear"), settings.get("timesteps", 1000),
            linear_start=settings.get("linear_start", 0.00085), linear_end=settings.get("linear_end", 0.012))
    except (NotImplementedError, ValueError, TypeError):
        return stored.double()
    alphas_cumprod = torch.cumprod(1 - torch.as_tensor(betas, dtype=torch.float64), dim=0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    if sigmas.shape == stored.shape and torch.allclose(sigmas.float(), stored, rtol=1e-5):
        return sigmas
    return stored.double()


LEARNED_VARIANCE_DDPM = "ddpm_learned_variance"
SINGLE_STEP_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral")
"""ComfyUI samplers that need no state across steps: the guidance correction can follow each of
their steps. Multistep samplers (dpmpp_2m, lms, ...) would lose their history."""
BASE_SAMPLERS = (LEARNED_VARIANCE_DDPM, *SINGLE_STEP_SAMPLERS)


def base_step(name: str) -> StepFunction | None:
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


LATENT_GUIDANCE = {
    "vae_decoder": None,
    "vae_decoder_bf16": torch.bfloat16,
    "latent_rgb_approximation": None,
}
"""How a latent model's x0 reaches the pixel losses: through the VAE decoder (exact; memory for
its activations, halved in bf16) or the latent -> RGB preview factors (fast, no VAE, approximate)."""


def is_pixel_model(base_model: comfy.model_base.BaseModel) -> bool:
    pixel_formats = tuple(cls for cls in (FacePixelFormat, getattr(comfy.latent_formats, "ChromaRadiance", None))
                          if cls is not None)
    return isinstance(base_model.latent_format, pixel_formats)


def vae_scale(vae: comfy.sd.VAE | None) -> int:
    """Pixels per latent pixel along each side: the VAE's, or SD's 8 when it is unknown (no VAE, or a
    video VAE whose ratio is not a plain number)."""
    return vae.downscale_ratio if vae is not None and isinstance(vae.downscale_ratio, int) else 8


HOST_MEMORY_STATE = (
    "_v", "_v_signature", "_v_weight", "_v_bias", "_prefetch", "_pin_state", "seed_key",
    "dynamic_vbars", "dynamic_pins", "dynamic_patchers", "current_patcher",
    "weight_function", "bias_function", "comfy_cast_weights", "prev_comfy_cast_weights",
    "comfy_patched_weights", "comfy_force_cast_weights",
)
"""What ComfyUI's memory management puts on the modules of a network it loaded: dynamic VRAM's
native host buffers and address-space slots (0.33 and later; their owners free raw pointers when
collected), the patcher itself, and lowvram's weight functions and cast flags."""


def private_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of a network ComfyUI loaded, made outside inference mode, with its weights as
    they are and none of HOST_MEMORY_STATE: a deep copy of that state would duplicate dynamic
    VRAM's native pointers (the copy's collection would free the original's buffers) and route
    the copy's forward through the loaded model's casts."""
    memo = {id(value): None for module in network.modules() for name in HOST_MEMORY_STATE
            if not isinstance(value := module.__dict__.get(name), (type(None), bool, int, float, str))}
    with torch.inference_mode(False):
        copied = copy.deepcopy(network, memo)
    for module in copied.modules():
        for name in HOST_MEMORY_STATE:
            module.__dict__.pop(name, None)
    not_loaded = [name for name, parameter in copied.named_parameters() if parameter.is_meta]
    if not_loaded:
        raise RuntimeError(f"{type(network).__name__} has weights that were never loaded ({not_loaded[:3]}, ...)")
    return copied.requires_grad_(False).eval()


_decoder_copies: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


class VaeDecoderMap:
    """The VAE's decoder as the pixel map. Autograd runs on a private copy made outside inference
    mode: the VAE that ComfyUI loaded holds inference tensors, which autograd cannot save."""

    def __init__(self, vae: comfy.sd.VAE, latent_format, dtype: torch.dtype | None = None):
        self.vae, self.latent_format, self.dtype = vae, latent_format, dtype
        self.scale = vae_scale(vae)

    def _decoder(self) -> torch.nn.Module:
        network = self.vae.first_stage_model
        decoder = _decoder_copies.get(network)
        if decoder is None or any(parameter.is_inference() for parameter in decoder.parameters()):
            decoder = private_copy(network)
            _decoder_copies[network] = decoder
        return decoder

    def prepare(self, sample: torch.Tensor) -> ToPixels:
        with torch.inference_mode(False):
            decoder = self._decoder().to(device=sample.device, dtype=self.dtype or torch.float32)
        dtype = self.dtype or torch.float32

        def to_pixels(x0: torch.Tensor) -> torch.Tensor:
            return decoder.decode(self.latent_format.process_out(x0).to(dtype)).float()
        return to_pixels


def pixel_map_for(base_model: comfy.model_base.BaseModel, vae: comfy.sd.VAE | None,
                  latent_guidance: str) -> tuple[PixelMap, bool]:
    """(pixel map, clamp x0 to [-1, 1]) for the model being sampled."""
    if is_pixel_model(base_model):
        return IdentityMap(), True
    latent_format = base_model.latent_format
    if latent_guidance == "latent_rgb_approximation":
        factors = getattr(latent_format, "latent_rgb_factors", None)
        if factors is None:
            raise ValueError(f"{type(latent_format).__name__} latents have no RGB preview factors: "
                             "use latent_guidance 'vae_decoder' with a VAE")
        return LinearRGBMap(factors, getattr(latent_format, "latent_rgb_factors_bias", None), vae_scale(vae)), False
    if vae is None:
        raise ValueError("a latent model (SD1.5, SDXL, ...) needs its VAE for SSDiff guidance with "
                         f"latent_guidance '{latent_guidance}': connect the checkpoint's VAE, or choose "
                         "'latent_rgb_approximation'")
    return VaeDecoderMap(vae, latent_format, LATENT_GUIDANCE[latent_guidance]), False


def _host_sampler_function(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           guidance: Guidance | None = None, base_sampler: str = LEARNED_VARIANCE_DDPM,
                           vae: comfy.sd.VAE | None = None, latent_guidance: str = "vae_decoder",
                           step_noise: ItemNoise | None = None):
    base_model = model.inner_model.inner_model
    pixel_map, clamp_x0 = pixel_map_for(base_model, vae, latent_guidance)
    try:
        return sample_ssdiff(model, x, sigmas, extra_args, callback, disable, guidance=guidance,
                             discrete_sigmas=schedule_sigmas(base_model), step_noise=step_noise,
                             base_step=base_step(base_sampler), pixel_map=pixel_map, clamp_x0=clamp_x0,
                             interrupt=check_interrupt)
    except torch.OutOfMemoryError as error:
        # Still an OutOfMemoryError, so that ComfyUI unloads its models and adds its own tips.
        raise torch.OutOfMemoryError(
            f"SSDiff guidance ran out of memory on a batch of {x.shape[0]} at {tuple(x.shape[-2:])}. Lower-memory "
            "options: fewer faces per batch (SSDiff Face Crop selection 'largest' or 'index'), weight_dtype "
            "bf16 in the face diffusion loader, latent_guidance 'vae_decoder_bf16' or "
            "'latent_rgb_approximation' for latent models, or ComfyUI's --lowvram") from error


def guided_sampler(guidance: Guidance, base_sampler: str = LEARNED_VARIANCE_DDPM, vae: comfy.sd.VAE | None = None,
                   latent_guidance: str = "vae_decoder") -> comfy.samplers.KSAMPLER:
    """A SAMPLER for SamplerCustom / SamplerCustomAdvanced that runs SSDiff's guided steps on top
    of SSDiff's learned-variance DDPM step or of a single-step ComfyUI sampler. With a latent
    model, `vae` and `latent_guidance` say how x0 reaches the pixel losses."""
    base_step(base_sampler)  # refuse an unknown name now, not mid-sampling
    if latent_guidance not in LATENT_GUIDANCE:
        raise ValueError(f"latent_guidance must be one of {', '.join(LATENT_GUIDANCE)}, got '{latent_guidance}'")
    return comfy.samplers.KSAMPLER(_host_sampler_function, extra_options={
        "guidance": guidance, "base_sampler": base_sampler, "vae": vae, "latent_guidance": latent_guidance})


def pixel_multiple(model: comfy.model_patcher.ModelPatcher, vae: comfy.sd.VAE | None = None) -> int:
    """Image sides must be multiples of this: the network's downsampling (x the VAE's)."""
    network = model.get_model_object("diffusion_model")
    factor = getattr(network, "downsampling_factor", 8)
    if is_pixel_model(model.model):
        return factor
    return factor * vae_scale(vae)


@dataclass(frozen=True)
class Conditioning:
    """What a latent model samples under, as in KSampler; the face DDPM needs none of it."""
    positive: list | None = None
    negative: list | None = None
    cfg: float = 1.0


def sample_guided(model: comfy.model_patcher.ModelPatcher, guidance: Guidance, image_shape: tuple[int, ...],
                  seed: int, steps: int, base_sampler: str = LEARNED_VARIANCE_DDPM,
                  conditioning: Conditioning = Conditioning(), vae: comfy.sd.VAE | None = None,
                  latent_guidance: str = "vae_decoder") -> torch.Tensor:
    """Samples images of `image_shape` (B x 3 x H x W) from pure noise over `steps` respaced DDPM
    steps; item i of the batch uses seed + i. Returns B x 3 x H x W in [-1, 1]. A latent model
    samples latents (decoded by `vae`) under the given conditioning."""
    pixel_space = is_pixel_model(model.model)
    if pixel_space:
        shape = tuple(image_shape)
        positive = negative = empty_conditioning()
    else:
        if vae is None:
            raise ValueError("a latent model (SD1.5, SDXL, ...) needs its VAE: connect the checkpoint's VAE")
        if conditioning.positive is None or conditioning.negative is None:
            raise ValueError("a latent model needs positive and negative conditioning (e.g. CLIPTextEncode)")
        scale = vae_scale(vae)
        shape = (image_shape[0], model.model.latent_format.latent_channels,
                 image_shape[2] // scale, image_shape[3] // scale)
        positive, negative = conditioning.positive, conditioning.negative
    sigmas = respaced_sigmas(steps, schedule_sigmas(model.model))
    noise = ItemNoise(seed, shape).draw()
    callback = latent_preview.prepare_callback(model, len(sigmas) - 1)
    samples = comfy.sample.sample_custom(
        model, noise, conditioning.cfg, guided_sampler(guidance, base_sampler, vae, latent_guidance), sigmas,
        positive, negative, torch.zeros(shape), callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    if pixel_space:
        return samples.clamp(-1, 1)
    return (vae.decode(samples).movedim(-1, 1)[:, :3].float() * 2 - 1).clamp(-1, 1)
