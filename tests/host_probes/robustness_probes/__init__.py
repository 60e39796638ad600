"""Test-only nodes, loaded into the test server beside the pack (never shipped): they put faults
that no stock node can make (NaN pixels, an exhausted GPU, faces at chosen places, values of the
wrong kind, empty batches, a Stable Diffusion model without its weights) onto the real /prompt
path, and report the server's state after a fault."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

SIMULATED_OUT_OF_MEMORY = "CUDA out of memory. Tried to allocate 20.00 GiB (simulated by RobustnessProbeOutOfMemory)"


class RobustnessProbeNonFinite:
    """Writes NaN, +inf or -inf into the first `count` values of an IMAGE (or any tensor)."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("*",), "value": (["nan", "inf", "-inf"],),
                             "count": ("INT", {"default": 1, "min": 1, "max": 1 << 30})}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True

    def apply(self, image: torch.Tensor, value: str, count: int):
        spoiled = image.clone()
        spoiled.view(-1)[:count] = float(value)
        return (spoiled,)


class RobustnessProbeOutOfMemory:
    """A clone of MODEL whose UNet raises torch.OutOfMemoryError from its call number
    `after_calls` + 1 on, as a GPU that runs out of memory mid-sampling does."""

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "after_calls": ("INT", {"default": 1, "min": 0, "max": 1000})}}

    def apply(self, model, after_calls: int):
        calls = 0

        def exhausted(apply_model, arguments):
            nonlocal calls
            calls += 1
            if calls > after_calls:
                raise torch.OutOfMemoryError(SIMULATED_OUT_OF_MEMORY)
            return apply_model(arguments["input"], arguments["timestep"], **arguments["c"])

        patched = model.clone()
        patched.set_model_unet_function_wrapper(exhausted)
        return (patched,)


class ScriptedDetector:
    """A face detector as SSDiff Face Crop takes one (the pack's FaceDetector), finding fixed rows
    (box, score, five landmarks) in any photo."""
    name = "scripted detector"
    default_confidence = 0.97

    def __init__(self, rows: list[list[float]]):
        self.rows = np.asarray(rows, np.float32).reshape(-1, 15)

    def find(self, image: np.ndarray) -> np.ndarray:
        return self.rows


class RobustnessProbeFaceDetector:
    """A face detector that finds the faces given as JSON rows of 15 numbers."""

    RETURN_TYPES = ("SSDIFF_FACE_DETECTOR",)
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"detections": ("STRING", {"multiline": True, "default": "[]"})}}

    def apply(self, detections: str):
        return (ScriptedDetector(json.loads(detections)),)


class RobustnessProbeHostState:
    """Reports the worker thread's autograd state and a MODEL's patches, every time it is queued."""

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "tag": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def report(self, model, tag: str):
        state = {
            "grad_enabled": torch.is_grad_enabled(),
            "inference_mode": torch.is_inference_mode_enabled(),
            "anomaly_detection": torch.is_anomaly_enabled(),
            "parameters_requiring_grad": sum(p.requires_grad for p in model.model.parameters()),
            "model_options": repr(model.model_options),
            "patches": sorted(model.patches),
            "object_patches": sorted(model.object_patches),
        }
        return {"ui": {"text": [json.dumps(state, sort_keys=True)]}}


class RobustnessProbeLoadedModels:
    """Reports the class names of the models ComfyUI's model management holds loaded, every time
    it is queued (it takes nothing, so it runs nothing else)."""

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def report(self, tag: str):
        import comfy.model_management

        names = sorted(type(entry.model.model).__name__ for entry in comfy.model_management.current_loaded_models
                       if entry.model is not None)
        return {"ui": {"text": [json.dumps(names)]}}


class RobustnessProbeAnyType:
    """Passes any value on as any type, as the reroute and switch nodes of custom packs do; the
    probes below change the value on its way."""

    RETURN_TYPES = ("*",)
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True

    def apply(self, value):
        return (value,)


class RobustnessProbeEmptyBatch(RobustnessProbeAnyType):
    """The first 0 items of an IMAGE or MASK batch, as a filter node that matched nothing gives."""

    def apply(self, value):
        return (value[:0],)


class RobustnessProbeScale(RobustnessProbeAnyType):
    """An IMAGE or MASK times a factor: 255 for a node that forgot to divide, 1.1 for an overshoot."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",), "factor": ("FLOAT", {"default": 255.0, "min": -1e6, "max": 1e6})}}

    def apply(self, value, factor: float):
        return (value * factor,)


class RobustnessProbeHugeImage:
    """A black grayscale IMAGE of any size as a zero-stride view, so that it costs no memory."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 20000, "min": 1, "max": 1 << 20}),
                             "height": ("INT", {"default": 20000, "min": 1, "max": 1 << 20})}}

    def apply(self, width: int, height: int):
        return (torch.zeros(1, 1, 1, 1).expand(1, height, width, 1),)


class RobustnessProbeTinyStableDiffusion:
    """A MODEL and VAE of the Stable Diffusion 1.5 kind (ComfyUI's own classes, tiny, random), for
    mix-ups with the face DDPM: no real SD checkpoint can be downloaded in the tests."""

    RETURN_TYPES = ("MODEL", "VAE")
    FUNCTION = "apply"
    CATEGORY = "testing/robustness"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def apply(self):
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from harness.tiny_models import sd15_model, sd_vae
        return sd15_model(), sd_vae()


class RobustnessProbeVRAMState:
    """Makes this server load models as ComfyUI does under --lowvram (LOW_VRAM, with `free_bytes`
    of free device memory if above 0) or --novram (NO_VRAM), which it turns off on a CPU (and which
    cannot be given beside --cpu): its CPU-device check is bypassed. AS_STARTED puts back what the
    server started with. Models already loaded stay as they are: POST /free to unload them."""

    RETURN_TYPES = ()
    FUNCTION = "apply"
    OUTPUT_NODE = True
    CATEGORY = "testing/robustness"
    STARTED: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"state": (["AS_STARTED", "LOW_VRAM", "NO_VRAM"],),
                             "free_bytes": ("INT", {"default": 0, "min": 0, "max": 1 << 62})}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def apply(self, state: str, free_bytes: int):
        import comfy.model_management as model_management

        started = self.STARTED
        if not started:
            started.update(vram_state=model_management.vram_state, is_device_cpu=model_management.is_device_cpu,
                           get_free_memory=model_management.get_free_memory)
        for name, value in started.items():
            setattr(model_management, name, value)
        if state != "AS_STARTED":
            model_management.vram_state = model_management.VRAMState[state]
            model_management.is_device_cpu = lambda device: False
            if free_bytes:
                def get_free_memory(dev=None, torch_free_too=False):
                    return (free_bytes, free_bytes) if torch_free_too else free_bytes

                model_management.get_free_memory = get_free_memory
        logging.info("robustness probes: models load as under %s", state)
        return {"ui": {"text": [state]}}


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    RobustnessProbeNonFinite, RobustnessProbeOutOfMemory, RobustnessProbeFaceDetector, RobustnessProbeHostState,
    RobustnessProbeLoadedModels,
    RobustnessProbeAnyType, RobustnessProbeEmptyBatch, RobustnessProbeScale, RobustnessProbeHugeImage,
    RobustnessProbeTinyStableDiffusion, RobustnessProbeVRAMState)}

