"""Model files that are missing, broken, of another kind or hostile, and model names that leave
the models folder: each refused with a message naming the problem; the server keeps serving."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.tiny_models import TINY_STAND_INS

from robustness_support import (DDPM, SCRATCH, assert_still_serves, ddpm_loader, execution_error, load_image,
                                output_arrays, random_rgb, refused, save, stage1_prompt,
                                write_image)


def scratch_prompt(server, model_name: str) -> dict:
    return {"1": {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": model_name}},
            "2": load_image(write_image(server, random_rgb(32, 32))),
            "3": {"class_type": "SSDiffScratchMask",
                  "inputs": {"detector": ["1", 0], "image": ["2", 0], "threshold": 0.4, "dilation": 0,
                             "resize_mode": "full_size"}},
            "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
            "5": save(["4", 0], "scratch")}


def ddpm_prompt(server, ckpt_name: str, weight_dtype: str = "fp32") -> dict:
    prompt = stage1_prompt(write_image(server, random_rgb(32, 32)))
    prompt["1"] = ddpm_loader(ckpt_name, weight_dtype)
    return prompt


class Marker:
    """Unpickling this creates the marker file: the payload of a hostile checkpoint."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_missing_file_is_refused_naming_it_and_where_to_get_it(server):
    text = refused(server, scratch_prompt(server, "no_such_detector.pt"))
    assert "no_such_detector.pt" in text and "not found" in text and "FT_Epoch_latest.pt" in text
    assert_still_serves(server)


def test_truncated_file_cannot_be_read(server, models_root):
    whole = (models_root / "ssdiff" / DDPM).read_bytes()
    (models_root / "ssdiff" / "robust_truncated.pth").write_bytes(whole[: len(whole) // 2])
    text = execution_error(server, ddpm_prompt(server, "robust_truncated.pth"))
    assert "could not read" in text and "robust_truncated.pth" in text
    assert_still_serves(server)


def test_empty_file_cannot_be_read(server, models_root):
    (models_root / "ssdiff" / "robust_empty.pt").write_bytes(b"")
    text = execution_error(server, scratch_prompt(server, "robust_empty.pt"))
    assert "could not read" in text and "robust_empty.pt" in text
    assert_still_serves(server)


def test_parser_file_given_to_the_scratch_loader_is_refused(server):
    text = execution_error(server, scratch_prompt(server, "resnet34.pt"))
    assert "resnet34.pt" in text and "scratch detector" in text and "FT_Epoch_latest.pt" in text
    assert_still_serves(server)


def test_pickle_that_runs_code_is_not_run(server, models_root, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model_state": Marker(marker)}, models_root / "ssdiff" / "robust_hostile.pt")
    assert not marker.exists()
    text = execution_error(server, scratch_prompt(server, "robust_hostile.pt"))
    assert not marker.exists(), "loading the checkpoint ran pickled code"
    assert "could not read" in text and "robust_hostile.pt" in text
    assert_still_serves(server)


def test_state_dict_with_missing_keys_names_some(server, models_root):
    state_dict = torch.load(models_root / "ssdiff" / DDPM, weights_only=True)
    dropped = sorted(key for key in state_dict if ".in_layers." in key)[:2]
    assert dropped
    for key in dropped:
        del state_dict[key]
    torch.save(state_dict, models_root / "ssdiff" / "robust_missing_keys.pth")
    text = execution_error(server, ddpm_prompt(server, "robust_missing_keys.pth"))
    assert "missing" in text and any(key.removeprefix("module.") in text for key in dropped), text
    assert_still_serves(server)


@pytest.mark.parametrize("weight_dtype", ["fp32", "fp16"])
def test_fp16_weights_load_and_run(server, models_root, weight_dtype):
    state_dict = torch.load(models_root / "ssdiff" / DDPM, weights_only=True)
    torch.save({key: value.half() for key, value in state_dict.items()},
               models_root / "ssdiff" / "robust_fp16.pth")
    arrays = output_arrays(server, server.run(ddpm_prompt(server, "robust_fp16.pth", weight_dtype), timeout=120))
    assert len(arrays) == 1 and arrays[0].shape == (32, 32, 3) and arrays[0].std() > 0
    assert_still_serves(server)


@pytest.mark.parametrize("name", ["../ssdiff/" + DDPM, "ssdiff/../../" + DDPM, "ABSOLUTE"])
def test_model_name_out_of_the_folder_is_refused(server, models_root, name):
    if name == "ABSOLUTE":
        name = str(models_root / "ssdiff" / DDPM)
    text = refused(server, ddpm_prompt(server, name))
    assert "not a path out of it" in text
    text = refused(server, scratch_prompt(server, "../ssdiff/" + SCRATCH if name != str(models_root / "ssdiff" / DDPM)
                                          else str(models_root / "ssdiff" / SCRATCH)))
    assert "not a path out of it" in text
    assert_still_serves(server)


@pytest.mark.parametrize("layout", ["checkpoint", "unet_only"])
def test_stable_diffusion_file_given_to_the_face_diffusion_loader_is_refused(server, comfy, models_root, layout):
    from safetensors.torch import save_file
    from harness.tiny_models import sd15_model

    unet = sd15_model().model.diffusion_model.state_dict()
    prefix = "model.diffusion_model." if layout == "checkpoint" else ""
    name = f"robust_sd15_{layout}.safetensors"
    save_file({prefix + key: value.contiguous() for key, value in unet.items()}, models_root / "ssdiff" / name)
    text = execution_error(server, ddpm_prompt(server, name))
    assert name in text and "face DDPM" in text and "iddpm_ffhq512_ema500000.pth" in text, text
    if layout == "unet_only":
        assert "Stable Diffusion" in text and "Load Checkpoint" in text
    assert_still_serves(server)


def test_state_dict_with_extra_keys_names_some(server, models_root):
    state_dict = torch.load(models_root / "ssdiff" / DDPM, weights_only=True)
    state_dict["robust.extra.weight"] = torch.zeros(3)
    torch.save(state_dict, models_root / "ssdiff" / "robust_extra_keys.pth")
    text = execution_error(server, ddpm_prompt(server, "robust_extra_keys.pth"))
    assert "unexpected" in text and "robust.extra.weight" in text, text
    assert ". ." not in text, "the reason and the advice are one sentence each"
    assert_still_serves(server)


def test_state_dict_with_a_tensor_of_the_wrong_shape_names_it(server, models_root):
    state_dict = torch.load(models_root / "ssdiff" / DDPM, weights_only=True)
    key = next(key for key in sorted(state_dict) if key.endswith("emb_layers.1.bias"))
    state_dict[key] = torch.zeros(7)
    torch.save(state_dict, models_root / "ssdiff" / "robust_wrong_shape.pth")
    text = execution_error(server, ddpm_prompt(server, "robust_wrong_shape.pth"))
    assert "robust_wrong_shape.pth" in text and "size mismatch for " + key.removeprefix("module.") in text, text
    assert_still_serves(server)


CONTAINERS = {
    "a_list": lambda: [torch.zeros(4), torch.ones(4)],
    "a_list_of_one": lambda: [torch.zeros(4)],
    "a_bare_tensor": lambda: torch.zeros(4),
    "a_number": lambda: 3,
    "no_tensors": lambda: {"epoch": 3, "optimizer": {"lr": 0.1}},
}


@pytest.mark.parametrize("content", sorted(CONTAINERS))
@pytest.mark.parametrize("loader", sorted(TINY_STAND_INS))
def test_checkpoint_container_of_the_wrong_shape_is_named_for_every_loader(server, models_root, loader, content):
    input_name, folder, _, _ = TINY_STAND_INS[loader]
    name = f"robust_{content}_{loader}.pth"
    torch.save(CONTAINERS[content](), models_root / folder / name)
    settings = {"SSDiffFaceDiffusionLoader": {"weight_dtype": "fp32"}, "SSDiffColouriserLoader": {"input_size": 512}}
    inputs = {input_name: name, **settings.get(loader, {})}
    text = execution_error(server, {"1": {"class_type": loader, "inputs": inputs},
                                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    expected = "no tensors" if content == "no_tensors" else "holds a "
    assert name in text and "not a checkpoint of the kind expected" in text and expected in text, text
    assert "http" in text, "the refusal says where to get the right file"
    assert_still_serves(server)
