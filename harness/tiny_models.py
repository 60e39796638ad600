"""Tiny randomly initialised networks of the real architectures, saved as real checkpoints:
the test suite's models, and the main job's plumbing check when no real checkpoint is installed."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from comfyui_ssdiff.models.face_restorers.codeformer import CODE_PIXELS
from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig

TINY_FACE_UNET = FaceUNetConfig(model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=(1, 1, 1),
                                attention_levels=(False, False, True))
"""Same class as the FFHQ-512 model, small widths: inputs must be multiples of 4 px."""
STAND_IN_FACE_UNET = FaceUNetConfig(model_channels=32, channel_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=(1,) * 7,
                                    attention_levels=(False,) * 6 + (True,))
"""The stand-in for the FFHQ-512 model in a job run without its file: small widths at the released
model's depth (six downsamplings, attention at 8 px for a 512 px face as its deepest attention is),
so that a 512 px face does not attend over 128 x 128 positions as TINY_FACE_UNET's would (40 of
the main job's 45 seconds on two CPU cores). Faces must be multiples of 64 px, as the crops are."""


def tiny_face_unet(seed: int = 0, config: FaceUNetConfig = TINY_FACE_UNET) -> FaceUNet:
    torch.manual_seed(seed)
    return FaceUNet(config).eval()


def save_face_ddpm(unet: FaceUNet, path: Path) -> Path:
    """Saves as the published file is saved: a .pth state dict whose keys carry 'module.', or a
    .safetensors file without the prefix."""
    state_dict = {key: value.detach().contiguous() for key, value in unet.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state_dict, str(path))
    else:
        torch.save({f"module.{key}": value for key, value in state_dict.items()}, path)
    return path


def save_retinaface_mobile(path: Path, seed: int = 0) -> Path:
    """facexlib's RetinaFace-MobileNet-0.25 (0.43 M parameters: the real, already tiny network),
    random weights, saved with the 'module.' prefix of the published files."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(seed)
    detector = RetinaFace(network_name="mobile0.25", device=torch.device("cpu"))
    torch.save({f"module.{key}": value for key, value in detector.state_dict().items()}, path)
    return path


def _random(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A module's state dict with every float tensor redrawn (BatchNorm statistics included), so
    that a network of random weights still maps inputs to varied outputs."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point() and not key.endswith("filt"):
            value = torch.rand(value.shape, generator=generator) * 0.5 + 0.75 if key.endswith("running_var") \
                else torch.randn(value.shape, generator=generator) * 0.05
        state_dict[key] = value.contiguous()
    return state_dict


def save_scratch_detector(path: Path, seed: int = 0) -> Path:
    """BOPBTL's detection UNet at depth 2 / width 8, wrapped as FT_Epoch_latest.pt is."""
    from comfyui_ssdiff.models.scratch_detection import ScratchUNet, ScratchUNetConfig

    torch.manual_seed(seed)
    network = ScratchUNet(ScratchUNetConfig(depth=2, wf=3))
    torch.save({"model_state": _random(network, seed), "epoch": 3}, path)
    return path


def save_cap_vstnet(path: Path, seed: int = 0) -> Path:
    """A one-block-per-stage photorealistic RevResNet, wrapped as photo_image.pt is."""
    from comfyui_ssdiff.models.cap_vstnet import RevResNet, RevResNetConfig

    torch.manual_seed(seed)
    network = RevResNet(RevResNetConfig(blocks=(1, 1, 1), strides=(1, 2, 2), channels=(16, 64, 256)))
    torch.save({"state_dict": network.state_dict()}, path)
    return path


def save_face_parser(path: Path, backend: str, seed: int = 0) -> Path:
    """The real parser architectures (they are small enough): 'parsenet' and 'bisenet' as facexlib
    builds them, 'resnet34' as yakhyo/face-parsing does."""
    torch.manual_seed(seed)
    if backend == "resnet34":
        from comfyui_ssdiff.models.face_parsing import ResNetBiSeNet
        network = ResNetBiSeNet(backbone="resnet34")
    elif backend == "bisenet":
        from facexlib.parsing.bisenet import BiSeNet
        network = BiSeNet(num_class=19)
    else:
        from facexlib.parsing.parsenet import ParseNet
        network = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    torch.save(_random(network, seed), path)
    return path


def save_arcface(path: Path, seed: int = 0) -> Path:
    """facexlib's IR-SE-50 ArcFace backbone (43.8 M parameters: facexlib builds no smaller one),
    its own random initialisation, saved as recognition_arcface_ir_se50.pth is."""
    from facexlib.recognition.arcface_arch import Backbone

    torch.manual_seed(seed)
    torch.save(Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").state_dict(), path)
    return path


def tiny_codeformer(seed: int = 0, face_size: int = 512) -> torch.nn.Module:
    """spandrel's CodeFormer with a one-layer, 64-wide transformer and a 32-entry codebook (its
    VQGAN has a fixed size in spandrel: 74 M parameters), in eval mode; its transformer reads the
    code grid of `face_size` px faces (16 x 16 at the published 512)."""
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(seed)
    codes = (face_size // CODE_PIXELS) ** 2
    return CodeFormer(dim_embd=64, n_head=8, n_layers=1, codebook_size=32, latent_size=codes).eval()


def save_codeformer(path: Path, seed: int = 0, face_size: int = 64) -> Path:
    """tiny_codeformer, wrapped as codeformer.pth is; at 64 px, where its encoder costs 1/64 of 512 px."""
    torch.save({"params_ema": tiny_codeformer(seed, face_size).state_dict()}, path)
    return path


def vgg16_features(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's VGG16 convolutions (fixed widths: 14.7 M parameters), its own random
    initialisation, keyed as vgg16-397923af.pth keys them (its classifier left out)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    return {f"features.{key}": value for key, value in make_layers(cfgs["D"]).state_dict().items()}


def save_vgg16_features(path: Path, seed: int = 0) -> Path:
    torch.save(vgg16_features(seed), path)
    return path


def _save_ddcolor(path: Path) -> Path:
    from .tiny_ddcolor import save_ddcolor

    return save_ddcolor(path)


TINY_STAND_INS = {
    "SSDiffFaceDiffusionLoader": ("ckpt_name", "ssdiff", "plumbing_check_ddpm.pth",
                                  lambda path: save_face_ddpm(tiny_face_unet(config=STAND_IN_FACE_UNET), path)),
    "SSDiffFaceDetectorLoader": ("model_name", "facedetection", "plumbing_check_retinaface.pth",
                                 save_retinaface_mobile),
    "SSDiffScratchDetectorLoader": ("model_name", "ssdiff", "plumbing_check_scratch.pt", save_scratch_detector),
    "SSDiffColourTransferLoader": ("model_name", "ssdiff", "plumbing_check_cap_vstnet.pt", save_cap_vstnet),
    "SSDiffFaceParserLoader": ("model_name", "facedetection", "plumbing_check_parsenet.pth",
                               lambda path: save_face_parser(path, "parsenet")),
    "SSDiffFaceRestorerLoader": ("model_name", "facerestore_models", "plumbing_check_codeformer.pth",
                                 save_codeformer),
    "SSDiffFaceRecognitionLoader": ("model_name", "facedetection", "plumbing_check_arcface.pth", save_arcface),
    "SSDiffColouriserLoader": ("model_name", "ddcolor", "plumbing_check_ddcolor.pth", _save_ddcolor),
}
"""Per loader node: (input, models subfolder, file name, writer) of a tiny random stand-in."""


SD15_TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
    "num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [1, 1], "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1], "use_spatial_transformer": True, "legacy": False,
    "context_dim": 32, "use_linear_in_transformer": False, "adm_in_channels": None,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}
"""SD1.5's UNet class at a fraction of its widths (context 32 instead of 768)."""
SD_TINY_VAE = {"embed_dim": 4, "ddconfig": {
    "double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}
"""SD's AutoencoderKL, 8x downscaling as the real one, 32 channels wide."""


def _redrawn(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    """ComfyUI builds its networks without initialising them: give every weight a value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight"):
                parameter.copy_(1 + torch.randn(parameter.shape, generator=generator) * std)
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def sd15_model(unet_config: dict = SD15_TINY_UNET, seed: int = 0):
    """A ComfyUI MODEL of the SD1.5 family (ComfyUI's own classes), random weights, on the CPU."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(unet_config))
    model = config.get_model({}, device=torch.device("cpu"))
    _redrawn(model.diffusion_model, seed)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())


def sd_vae(vae_config: dict = SD_TINY_VAE, seed: int = 0):
    """ComfyUI's VAE around SD's AutoencoderKL, random weights."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    torch.manual_seed(seed)
    network = AutoencoderKL(**vae_config)
    _redrawn(network, seed, std=0.15)
    return comfy.sd.VAE(sd=network.state_dict(), config={"params": vae_config})


def save_unet_lora(model, path: Path, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA in the kohya 'lora_unet_*' form for the attention projections of a MODEL, random
    low-rank weights (saved as .safetensors, as LoRAs are published)."""
    import comfy.lora

    generator = torch.Generator().manual_seed(seed)
    weights = model.model.state_dict()
    lora = {}
    for lora_key, weight_key in comfy.lora.model_lora_keys_unet(model.model, {}).items():
        if not lora_key.startswith("lora_unet_") or not weight_key.endswith(("to_q.weight", "to_v.weight")):
            continue
        out_features, in_features = weights[weight_key].shape
        lora[f"{lora_key}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.5
        lora[f"{lora_key}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.5
        lora[f"{lora_key}.alpha"] = torch.tensor(float(rank))
    save_file(lora, str(path))
    return path



# LaMa (big-lama.pt): spandrel's architecture at the real size (51 M parameters: LaMa comes in one
# size), saved as the TorchScript archive users have, in the upstream module tree.

class _Generator(torch.nn.Module):
    """LaMa's FFCResNetGenerator as the training code holds it: its layers in `model`."""

    def __init__(self, sequential: torch.nn.Sequential):
        super().__init__()
        self.model = sequential


class _TrainingModule(torch.nn.Module):
    """LaMa's DefaultInpaintingTrainingModule with predict_only: only `generator`."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator


class _JITWrapper(torch.nn.Module):
    """LaMa's bin/to_jit.py wrapper, as big-lama.pt was traced: the archive's module tree (and so
    its tensors' names and records) is the upstream one. Its traced code is not: the pack never
    reads code/, and tracing the whole generator would take seconds for nothing."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image, mask):
        return image * (1 - mask)


def big_lama(seed: int = 0) -> torch.nn.Module:
    """spandrel's LaMa with random weights, batch-norm statistics away from 0 and 1."""
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(seed)
    network = LaMa(in_nc=4, out_nc=3).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    for name, tensor in network.state_dict().items():
        if name.endswith("running_mean"):
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
        elif name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
    return network


def save_big_lama_archive(network: torch.nn.Module, path: Path) -> Path:
    """`network` (spandrel's LaMa) saved as big-lama.pt is: a TorchScript archive whose tensors are
    named model.generator.model.<i>..."""
    import warnings

    wrapper = _JITWrapper(_TrainingModule(_Generator(network.model.model))).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)), check_trace=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(path))
    return path


BOPBTL_MAPPING_FOLDERS = {"quality": "mapping_quality", "scratch": "mapping_scratch",
                          "scratch_hr": "mapping_Patch_Attention"}
BOPBTL_DECODER_FOLDERS = {"quality": "VAE_B_quality", "scratch": "VAE_B_scratch", "scratch_hr": "VAE_B_scratch"}


def randomised(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (BOPBTL's init zeroes the non-local W, which would hide the attention):
    uniform, weights of variance 1/fan_in, biases of standard deviation 0.1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            std = 1 / parameter[0].numel() ** 0.5 if parameter.ndim > 1 else 0.1
            parameter.uniform_(-3 ** 0.5 * std, 3 ** 0.5 * std, generator=generator)
    return network.eval()


def random_network(network_class: type[torch.nn.Module], seed: int) -> torch.nn.Module:
    """A network built without its own initialisation (meta), then randomised."""
    with torch.device("meta"):
        network = network_class()
    return randomised(network.to_empty(device="cpu"), seed)


def save_bopbtl_restoration(root: Path, modes: tuple[str, ...] = ("quality", "scratch", "scratch_hr")) -> Path:
    """BOPBTL's global-restoration files of `modes` as global_checkpoints.zip unpacks them under
    `root` (checkpoints/restoration): full-size random networks (the released widths are fixed by
    the checkpoints; the mappings are 144 to 296 MB each), torch.save of each state dict
    (base_model.py:46-49). Each latest_net_G.pth is a whole GlobalGenerator_DCDCv2, encoder and
    decoder."""
    from comfyui_ssdiff.models.bopbtl_global import (PatchAttentionMapping, QualityMapping, ScratchMapping,
                                                     VAEDecoder, VAEEncoder)
    mappings = {"quality": QualityMapping, "scratch": ScratchMapping, "scratch_hr": PatchAttentionMapping}
    vaes = ("VAE_A_quality", *dict.fromkeys(BOPBTL_DECODER_FOLDERS[mode] for mode in modes))
    for seed, folder in enumerate(("VAE_A_quality", "VAE_B_quality", "VAE_B_scratch")):
        if folder in vaes:
            (root / folder).mkdir(parents=True, exist_ok=True)
            generator = {**random_network(VAEEncoder, 10 * seed).state_dict(),
                         **random_network(VAEDecoder, 10 * seed + 1).state_dict()}
            torch.save(generator, root / folder / "latest_net_G.pth")
    for seed, (mode, folder) in enumerate(BOPBTL_MAPPING_FOLDERS.items()):
        if mode in modes:
            (root / folder).mkdir(parents=True, exist_ok=True)
            torch.save(random_network(mappings[mode], 100 + seed).state_dict(),
                       root / folder / "latest_net_mapping_net.pth")
    return root
