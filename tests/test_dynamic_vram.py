"""The pack under ComfyUI's dynamic VRAM (the default since 2026-02-28 on NVIDIA/ROCm GPUs): what a
CPU host can exercise. A CPU process never gets a dynamic patcher (ComfyUI turns it off with
--cpu, and ModelPatcherDynamic falls back to ModelPatcher on a CPU device), so the state dynamic
VRAM puts on a loaded network's modules is attached here by hand, named as the host's own
model_patcher.py and ops.py name it; the test that reads those files fails when a new ComfyUI
adds state the pack does not know. What only a GPU can show (a real streamed VAE under the
latent path's private decoder copy) is listed in the README."""
from __future__ import annotations

import inspect
import re

import pytest
import torch

from conftest import HOST
from node_runner import execute
from test_latent_path import decode_with_gradient
from harness.tiny_models import sd15_model, sd_vae

MODULE_STATE_SOURCES = ("comfy/model_patcher.py", "comfy/ops.py")
NETWORK_CONTENT = {"weight", "bias", "_full_precision_mm", "_full_precision_mm_config", "layout_type",
                   "quant_format"}
"""Attributes memory management sets that are the network itself (weights, quantised layouts):
a private copy keeps them."""
PLAIN_BOOKKEEPING = {"device", "skip_injection", "model_lowvram", "lowvram_patch_counter",
                     "model_loaded_weight_memory", "model_offload_buffer_memory", "current_weight_patches_uuid"}
"""Numbers and flags a copy carries harmlessly (nothing reads them off a copy that no patcher holds)."""


class NativeBuffer:
    """Stands in for comfy_aimdo's HostBuffer / ModelVBAR, which free a raw pointer when collected:
    a copy of one would free the original's memory."""

    def __deepcopy__(self, memo):
        raise AssertionError("a native dynamic-VRAM buffer was deep-copied")


def assigned_module_attributes(source: str) -> set[str]:
    """Attribute names the host's code assigns on a network's modules (m., s., module., self.model.)."""
    pattern = r"\b(?:m|s|module|self\.model)\.([A-Za-z_]\w*)\s*=(?!=)"
    return set(re.findall(pattern, source))


def test_the_pack_knows_every_attribute_this_hosts_memory_management_puts_on_modules(pack):
    assigned = set()
    for relative in MODULE_STATE_SOURCES:
        assigned |= assigned_module_attributes((HOST / relative).read_text())
    assert {"comfy_cast_weights", "weight_function"} <= assigned, "the scan found none of the known attributes"
    unknown = assigned - set(pack.comfy_adapter.pixel_maps.HOST_MEMORY_STATE) - NETWORK_CONTENT - PLAIN_BOOKKEEPING
    assert not unknown, (f"this ComfyUI puts {sorted(unknown)} on loaded modules: decide whether a private copy "
                         "(comfy_adapter.pixel_maps.private_copy) must leave it behind")


def with_dynamic_vram_state(network: torch.nn.Module, patcher) -> torch.nn.Module:
    """`network` as ModelPatcherDynamic.__init__ and .load() leave it (model_patcher.py, ops.py)."""
    device = torch.device("cuda", 0)
    network.dynamic_vbars = {device: NativeBuffer()}
    network.dynamic_pins = {device: {"weights": (NativeBuffer(), [], [-1], [0], [0], {})}}
    network.dynamic_patchers = {id(patcher)}
    network.current_patcher = patcher
    for module in network.modules():
        if hasattr(module, "comfy_cast_weights"):  # comfy.ops layers
            module._v = (NativeBuffer(), 0, 1024)
            module._pin_state = NativeBuffer()
            module.comfy_cast_weights = True
            module.weight_function = [lambda weight: torch.zeros_like(weight)]
    return network


def test_the_latent_paths_private_decoder_leaves_dynamic_vram_buffers_and_casts_behind(comfy, pack):
    latent_format = sd15_model().model.latent_format
    plain_vae, streamed_vae = sd_vae(seed=3), sd_vae(seed=3)
    network = with_dynamic_vram_state(streamed_vae.first_stage_model, streamed_vae.patcher)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    target = torch.zeros(1, 3, 64, 64)
    pixels, gradient = decode_with_gradient(pack, streamed_vae, latent_format, x0, target)
    expected_pixels, expected_gradient = decode_with_gradient(pack, plain_vae, latent_format, x0, target)
    assert torch.equal(pixels, expected_pixels) and torch.equal(gradient, expected_gradient)
    assert gradient.abs().sum() > 0

    copy = pack.comfy_adapter.pixel_maps._decoder_copies[network]
    state = set(pack.comfy_adapter.pixel_maps.HOST_MEMORY_STATE)
    left = {f"{name or 'root'}.{key}" for name, module in copy.named_modules() for key in module.__dict__
            if key in state}
    assert not left, f"the private copy kept the host's memory state: {sorted(left)[:5]}"
    # The VAE ComfyUI loaded keeps its own.
    assert isinstance(network.dynamic_vbars[torch.device("cuda", 0)], NativeBuffer)
    assert all(isinstance(module._v[0], NativeBuffer) for module in network.modules() if hasattr(module, "_v"))


def test_a_network_with_weights_never_loaded_is_refused_by_name(comfy, pack):
    with torch.device("meta"):
        network = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(RuntimeError, match="never loaded"):
        pack.comfy_adapter.pixel_maps.private_copy(network)


def test_the_face_model_is_a_plain_patcher_on_every_host(comfy):
    from comfy import model_patcher
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    assert type(model) is model_patcher.ModelPatcher
    assert not getattr(model, "is_dynamic", lambda: False)()
    dynamic = getattr(model_patcher, "ModelPatcherDynamic", None)
    if dynamic is not None:  # 0.33 and later: on a CPU device it is the plain patcher
        assert type(dynamic(model.model, torch.device("cpu"), torch.device("cpu"))) is model_patcher.ModelPatcher


def test_the_face_model_deep_copies_as_comfyuis_training_and_multi_gpu_nodes_need_on_hosts_that_have_it(comfy):
    from comfy import model_patcher
    if "force_deepcopy" not in inspect.signature(model_patcher.ModelPatcher.clone).parameters:
        pytest.skip("this ComfyUI (0.3.75) has no clone(force_deepcopy=...) and no dynamic VRAM")
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="bf16")
    copied = model.clone(force_deepcopy=True)
    disabled = model.clone(disable_dynamic=True)
    original = model.get_model_object("diffusion_model")
    for clone in (copied, disabled):
        assert type(clone) is model_patcher.ModelPatcher
    network = copied.get_model_object("diffusion_model")
    assert network is not original and network.dtype == torch.bfloat16
    for (key, value), other in zip(network.state_dict().items(), original.state_dict().values()):
        assert torch.equal(value, other) and value.data_ptr() != other.data_ptr(), key


def test_the_face_unet_builds_with_the_lazy_layers_dynamic_vram_gives_comfyuis_linear_on_hosts_that_have_it(
        comfy, monkeypatch):
    """Under dynamic VRAM (aimdo, on NVIDIA GPUs) ComfyUI's Linear layers are built without weights
    and take them from the state dict; the face UNet, made of ComfyUI's layers, loads through that
    path with every tensor in place and computes what the plain build computes."""
    memory_management = pytest.importorskip("comfy.memory_management",
                                            reason="this ComfyUI (0.3.75) has no dynamic VRAM")
    if not hasattr(memory_management, "aimdo_enabled"):
        pytest.skip("this ComfyUI has no aimdo switch")
    from comfyui_ssdiff.comfy_adapter.face_model import HostFaceUNet
    from comfyui_ssdiff.models import guided_diffusion
    from harness.tiny_models import tiny_face_unet

    state_dict = tiny_face_unet(seed=2).state_dict()
    plain = guided_diffusion.build(state_dict, HostFaceUNet)
    monkeypatch.setattr(memory_management, "aimdo_enabled", True)
    lazy = guided_diffusion.build(state_dict, HostFaceUNet)
    monkeypatch.undo()
    assert any(type(module).__name__ == "Linear" and getattr(module, "comfy_need_lazy_init_bias", None) is not None
               for module in lazy.modules()), "the lazy path was not taken"
    for (key, value), other in zip(lazy.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(value, other), key
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(lazy(x, t), plain(x, t), rtol=0, atol=0)
