"""Precision where it pays (issue 31, point 3): the loaders of the networks that run in bf16 offer
it (DDColor, BOPBTL's global restoration), their output stays finite and close to fp32's, and fp16,
which they do not support, is refused by name before the run (no NaN). spandrel marks CodeFormer,
GFPGAN and LaMa as bf16-capable, but cast to bf16 they fail (CodeFormer mixes fp32 tensors into its
forward; LaMa's FFT has no bf16): the test below shows it, and their loaders stay fp32."""
from __future__ import annotations

import pytest
import torch

from node_runner import execute
from harness.tiny_ddcolor import TINY_INPUT_SIZE
from harness.tiny_models import big_lama, save_big_lama_archive

GLOBAL = {"encoder": "restoration/VAE_A_quality/latest_net_G.pth",
          "mapping": "restoration/mapping_quality/latest_net_mapping_net.pth",
          "decoder": "restoration/VAE_B_quality/latest_net_G.pth"}


def photo(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([xs, ys, 0.5 + 0.3 * torch.sin(9 * xs)], dim=-1)[None]


@pytest.fixture(scope="module")
def lama_name(models_root):
    path = save_big_lama_archive(big_lama(seed=2), models_root / "inpaint" / "precision_lama.pt")
    yield path.name
    path.unlink()


def cases(ddcolor_file, lama_name):
    mask = torch.zeros(1, 48, 64)
    mask[0, 20, 4:60] = 1
    return {
        "SSDiffColouriserLoader": ({"model_name": ddcolor_file.name, "input_size": TINY_INPUT_SIZE}, lambda network: (
            "SSDiffColourise", {"colouriser": network, "image": photo(48, 64)})),
        "SSDiffGlobalRestorationLoader": (GLOBAL, lambda networks: (
            "SSDiffGlobalRestoration", {"global_restoration": networks, "image": photo(48, 64), "postprocess": "model",
                                        "mask_dilation": -1})),
    }


@pytest.mark.parametrize("loader", ["SSDiffColouriserLoader", "SSDiffGlobalRestorationLoader"])
def test_bf16_runs_close_to_fp32_and_fp16_is_refused_by_name(comfy, bopbtl_files, ddcolor_file, lama_name, loader):
    loader_inputs, run = cases(ddcolor_file, lama_name)[loader]
    outputs = {}
    for precision in ("fp32", "bf16"):
        network, = execute(comfy, loader, **loader_inputs, precision=precision)
        node, inputs = run(network)
        outputs[precision], = execute(comfy, node, **inputs)
    assert torch.isfinite(outputs["bf16"]).all()
    assert outputs["bf16"].dtype == torch.float32
    difference = (outputs["bf16"] - outputs["fp32"]).abs().mean()
    assert 0 < difference < 0.05, difference
    refusal = comfy.NODE_CLASS_MAPPINGS[loader].validate_inputs(precision="fp16")
    assert isinstance(refusal, str) and refusal.startswith("precision fp16: ") and "fp32 or bf16 only" in refusal
    with pytest.raises(ValueError, match="precision fp16: .* runs in fp32 or bf16 only"):
        execute(comfy, loader, **loader_inputs, precision="fp16")


def test_spandrels_codeformer_and_lama_do_not_run_in_bf16_so_their_loaders_offer_fp32_only(comfy, lama_name):
    """Why those loaders have no precision input: the networks as spandrel builds them, cast to bf16."""
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    lama, = execute(comfy, "SSDiffInpaintModelLoader", model_name=lama_name)
    for loader in ("SSDiffFaceRestorerLoader", "SSDiffInpaintModelLoader"):
        schema = comfy.NODE_CLASS_MAPPINGS[loader].define_schema()
        assert "precision" not in [item.id for item in schema.inputs] and "Runs in fp32" in schema.description
    import copy
    codeformer = copy.deepcopy(restorer.network).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="same dtype"):
        codeformer(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16), weight=0.5)
    with pytest.raises((NotImplementedError, RuntimeError), match="BFloat16"):
        copy.deepcopy(lama).to(torch.bfloat16)(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16),
                                               torch.zeros(1, 1, 64, 64, dtype=torch.bfloat16))
