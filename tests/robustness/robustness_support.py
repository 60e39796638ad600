"""Shared by the robustness tests: small API prompts built by hand for the real server, and the
check that the server still serves after a bad case."""
from __future__ import annotations

import json
import uuid

import numpy as np
from PIL import Image

from stage_settings import ONE_STOP_SETTINGS, PSEUDO_REFERENCE_SETTINGS, SELECTIVE_SETTINGS

DDPM = "tiny_face_ddpm.pth"
SCRATCH = "FT_Epoch_latest.pt"
DETECTOR = "detection_mobilenet0.25_Final.pth"


def write_image(server, array: np.ndarray, mode: str | None = None, name: str | None = None) -> str:
    """Writes `array` as a PNG into the server's input folder and returns its name."""
    name = name or f"robust_{uuid.uuid4().hex[:10]}.png"
    Image.fromarray(array, mode).save(server.input_dir / name) if mode else \
        Image.fromarray(array).save(server.input_dir / name)
    return name


def random_rgb(height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def load_image(file_name: str) -> dict:
    return {"class_type": "LoadImage", "inputs": {"image": file_name}}


def ddpm_loader(ckpt_name: str = DDPM, weight_dtype: str = "fp32") -> dict:
    return {"class_type": "SSDiffFaceDiffusionLoader", "inputs": {"ckpt_name": ckpt_name, "weight_dtype": weight_dtype}}


def pseudo_reference(model: list, image: list, seed: int = 1, steps: int = 2, mask: list | None = None,
                     **overrides) -> dict:
    inputs = {"model": model, "image": image, **PSEUDO_REFERENCE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed,
              "steps": steps}
    if mask is not None:
        inputs["scratch_mask"] = mask
    inputs.update(overrides)
    return {"class_type": "SSDiffPseudoReference", "inputs": inputs}


def selective(model: list, image: list, reference: list, seed: int = 1, steps: int = 2, mask: list | None = None,
              **overrides) -> dict:
    inputs = {"model": model, "image": image, "coarse_restoration": image, "pseudo_reference": reference,
              **SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed, "steps": steps}
    if mask is not None:
        inputs["scratch_mask"] = mask
    inputs.update(overrides)
    return {"class_type": "SSDiffSampler", "inputs": inputs}


def save(images: list, prefix: str = "robust") -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def stage1_prompt(file_name: str, seed: int = 1, **overrides) -> dict:
    """LoadImage -> SSDiff Pseudo Reference (tiny DDPM, 2 steps) -> SaveImage."""
    return {"1": ddpm_loader(), "2": load_image(file_name), "3": pseudo_reference(["1", 0], ["2", 0], seed, **overrides),
            "4": save(["3", 0], "stage1")}


def both_stages_prompt(file_name: str, seed: int = 1, with_scratch_mask: bool = True, **overrides) -> dict:
    """LoadImage -> Scratch Mask -> Pseudo Reference -> SSDiff Sampler -> SaveImage (stage 2 only)."""
    prompt = {"1": ddpm_loader(), "2": load_image(file_name),
              "3": pseudo_reference(["1", 0], ["2", 0], seed, mask=["6", 0] if with_scratch_mask else None),
              "4": selective(["1", 0], ["2", 0], ["3", 0], seed, mask=["6", 0] if with_scratch_mask else None,
                             **overrides),
              "7": save(["4", 0], "stage2")}
    if with_scratch_mask:
        prompt["5"] = {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": SCRATCH}}
        prompt["6"] = {"class_type": "SSDiffScratchMask",
                       "inputs": {"detector": ["5", 0], "image": ["2", 0], "threshold": 0.4, "dilation": 1,
                                  "resize_mode": "full_size"}}
    return prompt


def output_arrays(server, entry: dict) -> list[np.ndarray]:
    arrays = []
    for path in server.output_images(entry):
        with Image.open(path) as image:
            arrays.append(np.asarray(image))
    return arrays


def refused(server, prompt: dict) -> str:
    """The text of ComfyUI's HTTP 400 for a prompt refused at validation."""
    response = server.queue(prompt)
    assert response.status_code == 400, f"expected a refusal, got {response.status_code}: {response.text[:500]}"
    return response.text


def execution_error(server, prompt: dict) -> str:
    """The execution_error message of a prompt that passes validation and fails while running."""
    try:
        entry = server.run(prompt, timeout=120)
    except RuntimeError as error:
        assert "failed" in str(error), error
        return str(error)
    raise AssertionError(f"the prompt ran: {json.dumps(entry.get('outputs'))[:500]}")


_SEEDS = iter(range(10_000, 1_000_000))


def assert_still_serves(server) -> None:
    """The same server still runs a valid prompt: scratch mask and both stages on a 32 px face, with
    a fresh seed so that ComfyUI's cache cannot answer for the sampler."""
    name = "robust_still_serves.png"
    if not (server.input_dir / name).exists():
        write_image(server, random_rgb(32, 32, seed=123), name=name)
    arrays = output_arrays(server, server.run(both_stages_prompt(name, seed=next(_SEEDS)), timeout=120))
    assert len(arrays) == 1 and arrays[0].shape == (32, 32, 3)
    assert arrays[0].std() > 0, "a valid prompt gave a flat image"

