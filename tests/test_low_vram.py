"""The pack under ComfyUI's --lowvram and --novram loading (issue 31), on the CPU.

ComfyUI turns both off for a CPU device (load_models_gpu: a CPU load device gets VRAMState.DISABLED),
and a CPU-only torch needs --cpu. So the CPU stands in for the GPU here: the device check is
bypassed and, for --lowvram, the free memory is made small, so that ComfyUI's own partial loading
(ModelPatcher.load with a weight budget) runs on every network of the pack, and each node must give
what it gives when loaded in full. What this cannot show is a copy between two devices: that is
bench/gpu_check.py's server run under --lowvram and --novram, on a GPU.

The whole colourise workflow (every network of the whole photo but BOPBTL's, LaMa and ArcFace,
which the in-process test covers) also runs through the test server loading that way (the probe
pack's RobustnessProbeVRAMState) and writes the photo it writes loading normally.

What ComfyUI does, read from model_management.load_models_gpu and model_patcher.load:
  * --novram: a weight budget of 0.1 bytes. Layers made by comfy.ops (the face UNet's: see
    comfy_adapter.face_model.HostFaceOperations) are left in system memory and their weights cast to
    the input's device as each runs; plain torch layers (every prior network) are left in system
    memory, and the pack runs each where its weights are.
  * --lowvram: a budget of the free memory less what the call needs; the pack's networks are loaded
    whole (force_full_load: their layers cannot be streamed), the face UNet up to the budget and
    streamed beyond it.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import HOST_PROBES
from node_runner import execute
from stage_settings import SELECTIVE_SETTINGS
from test_model_management import free_and_wait, lama_file, runs, unload_all  # noqa: F401 (lama_file: a fixture)

sys.path.insert(0, str(HOST_PROBES))
from robustness_probes import RobustnessProbeVRAMState  # noqa: E402  (the same switch the test server has)

FACE_SIZE = 32


def faces() -> torch.Tensor:
    return torch.rand(1, FACE_SIZE, FACE_SIZE, 3, generator=torch.Generator().manual_seed(5))


def scratch_mask() -> torch.Tensor:
    mask = torch.zeros(1, FACE_SIZE, FACE_SIZE)
    mask[:, FACE_SIZE // 2, :] = 1.0
    return mask


def guided_faces(comfy, model, vae) -> torch.Tensor:
    """A guided SSDiff run of the face DDPM through ComfyUI's SamplerCustom (which loads the MODEL
    with load_models_gpu and the memory the sampling needs)."""
    image = faces()
    conditioning, = execute(comfy, "SSDiffUnconditional")
    sampler, = execute(comfy, "SSDiffSelectiveSampler", image=image, coarse_restoration=image,
                       pseudo_reference=image, scratch_mask=scratch_mask(), **SELECTIVE_SETTINGS)
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="simple", steps=4, denoise=1.0)
    latent, = execute(comfy, "VAEEncode", pixels=image, vae=vae)
    output, _ = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=1.0,
                        positive=conditioning, negative=conditioning, sampler=sampler, sigmas=sigmas,
                        latent_image=latent)
    return output["samples"]


def streamed_layers(network: torch.nn.Module) -> tuple[int, int]:
    """(layers ComfyUI streams, layers it could stream): comfy.ops layers with comfy_cast_weights set."""
    castable = [module for module in network.modules() if hasattr(module, "comfy_cast_weights")]
    return sum(bool(module.comfy_cast_weights) for module in castable), len(castable)


@contextlib.contextmanager
def comfyui_loading_as(state: str, free_bytes: int = 0):
    """In this process, ComfyUI's loading under `state` (LOW_VRAM, NO_VRAM) with the CPU standing in
    for the GPU and `free_bytes` of free device memory if above 0 (RobustnessProbeVRAMState, as the
    test server switches it), from nothing loaded; afterwards as started, nothing loaded."""
    unload_all()
    RobustnessProbeVRAMState().apply(state, free_bytes)
    try:
        yield
    finally:
        RobustnessProbeVRAMState().apply("AS_STARTED", 0)
        unload_all()


@pytest.fixture(scope="module")
def face_model(comfy):
    return execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")


@pytest.mark.parametrize("state", ["NO_VRAM", "LOW_VRAM"])
def test_the_face_ddpm_is_streamed_layer_by_layer_and_samples_the_same_faces(comfy, face_model, state):
    import comfy.model_management as model_management

    model, vae = face_model
    unet = model.get_model_object("diffusion_model")
    unload_all()
    expected = guided_faces(comfy, model, vae)
    assert streamed_layers(unet)[0] == 0, "loaded in full, ComfyUI streams nothing"
    unet_bytes = sum(parameter.numel() * parameter.element_size() for parameter in unet.parameters())
    # --lowvram on a card with room for the sampling and about half the UNet's weights.
    free = 0 if state == "NO_VRAM" else int(model_management.minimum_inference_memory()) + unet_bytes // 2
    with comfyui_loading_as(state, free):
        sampled = guided_faces(comfy, model, vae)
        streamed, castable = streamed_layers(unet)
    assert castable > 0 and 0 < streamed <= castable, (streamed, castable)
    if state == "NO_VRAM":
        assert streamed == castable, "--novram streams every layer"
    else:
        assert streamed < castable, "--lowvram loads what fits and streams the rest"
    torch.testing.assert_close(sampled, expected, rtol=0, atol=1e-6)


def test_every_prior_network_gives_the_same_result_as_comfyui_loads_it(comfy, bopbtl_files, ddcolor_file, lama_file):
    unload_all()
    networks = runs(comfy, bopbtl_files, ddcolor_file, lama_file)
    expected = {name: run() for name, (network, run) in networks.items()}
    for state, free in (("NO_VRAM", 0), ("LOW_VRAM", 64 * 2 ** 20)):
        with comfyui_loading_as(state, free):
            for name, (network, run) in networks.items():
                outputs = run()
                assert len(outputs) == len(expected[name])
                for output, reference in zip(outputs, expected[name]):
                    if isinstance(reference, torch.Tensor):
                        torch.testing.assert_close(output, reference, rtol=0, atol=1e-6, msg=f"{name} under {state}")


def test_a_face_detector_built_for_another_device_runs_where_comfyui_left_its_weights(comfy):
    """facexlib's RetinaFace moves its inputs to the device it was built for; under --novram ComfyUI
    leaves its weights in system memory: Face Crop runs it where its weights are."""
    detector, = execute(comfy, "SSDiffFaceDetectorLoader", model_name="detection_mobilenet0.25_Final.pth")
    settings = {"image": faces().expand(1, -1, -1, -1).repeat(1, 2, 2, 1), "crop_size": 64, "selection": "largest",
                "index": 0, "min_eye_distance": 0.0, "confidence": 0.0}
    expected = execute(comfy, "SSDiffFaceCrop", detector=detector, **settings)
    network = detector.network
    network.device = torch.device("meta")  # built for a device the weights are not on
    found = execute(comfy, "SSDiffFaceCrop", detector=detector, **settings)
    assert network.device == torch.device("cpu")
    torch.testing.assert_close(found[0], expected[0], rtol=0, atol=0)


def colourised_photo(server) -> np.ndarray:
    from test_colourise_nodes import colourise_test_prompt

    images = server.output_images(server.run(colourise_test_prompt(server)))
    assert len(images) == 1, images
    with Image.open(images[0]) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def load_as(server, state: str, free_bytes: int = 0) -> None:
    """The server loads as under `state` from its next prompt on (the probe pack's
    RobustnessProbeVRAMState), its models unloaded and its cache of outputs emptied."""
    server.run({"1": {"class_type": "RobustnessProbeVRAMState", "inputs": {"state": state, "free_bytes": free_bytes}}})
    free_and_wait(server, free_memory=True)


def test_the_colourise_workflow_writes_the_same_photo_through_the_server_under_novram_and_lowvram(
        comfy, face_model, server):
    """(--lowvram and --novram cannot be given with --cpu, which a CPU-only torch needs: the probe
    pack sets ComfyUI's state as they would, then puts it back.)"""
    import comfy.model_management as model_management

    unet = face_model[0].get_model_object("diffusion_model")
    unet_bytes = sum(parameter.numel() * parameter.element_size() for parameter in unet.parameters())
    load_as(server, "AS_STARTED")
    expected = colourised_photo(server)
    try:
        for state, free in (("NO_VRAM", 0), ("LOW_VRAM", int(model_management.minimum_inference_memory())
                                                         + unet_bytes // 2)):
            load_as(server, state, free)
            before = len(server.log_text())
            written = colourised_photo(server)
            log = server.log_text()[before:]
            assert "loaded partially" in log, f"ComfyUI streamed no model under {state}"
            assert np.abs(written - expected).max() <= 1, state
    finally:
        load_as(server, "AS_STARTED")
