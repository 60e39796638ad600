"""What stays alive while the face UNet runs, the largest memory of a guided step: the output
loop frees the previous block's output before the next block runs (the released code's order),
and a guided step holds none of the previous pass's tensors through its model call."""
from __future__ import annotations

import weakref

import torch

from harness.tiny_models import tiny_face_unet
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance
from comfyui_ssdiff.ssdiff_core.sampler import VARIANCE_SINK_KEY, sample_ssdiff


def test_each_output_block_runs_after_the_previous_output_is_freed():
    network = tiny_face_unet(seed=1).eval()
    previous_output: list[weakref.ref] = []
    alive_at_call = []

    def before(block, args):
        alive_at_call.append(bool(previous_output) and previous_output[-1]() is not None)

    def after(block, args, output):
        previous_output.append(weakref.ref(output))

    for block in network.output_blocks:
        block.register_forward_pre_hook(before)
        block.register_forward_hook(after)
    with torch.inference_mode():
        network(torch.randn(1, 3, 32, 32), torch.full((1,), 10.0))
    assert len(alive_at_call) == len(network.output_blocks) > 1
    assert not any(alive_at_call), "an output block ran while the previous block's output was still held"


def discrete_sigmas() -> torch.Tensor:
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def test_a_guided_step_holds_nothing_of_the_last_pass_through_its_model_call():
    sigmas = discrete_sigmas()
    last_pass: list[weakref.ref] = []
    alive_at_call = []

    def model(x, sigma, model_options=None, **_):
        alive_at_call.append([name for name, tensor in last_pass if tensor() is not None])
        output = torch.cat([x * 0.5, torch.zeros_like(x)], dim=1)
        model_options["transformer_options"][VARIANCE_SINK_KEY].store(output, None)
        return x * 0.5

    def remember(info):
        record = info["ssdiff"]
        last_pass[:] = [(name, weakref.ref(getattr(record, name)))
                        for name in ("x_t", "model_output", "x0h", "mean", "log_variance", "x_unguided",
                                     "gradient", "x_prev")]

    degraded = torch.rand(1, 3, 16, 16) * 2 - 1
    guidance = PseudoReferenceGuidance(degraded=degraded, scratch=torch.zeros(1, 1, 16, 16))
    grid = torch.stack([sigmas[800], sigmas[799], sigmas[798], sigmas[797]]).float()
    with torch.inference_mode():
        sample_ssdiff(model, torch.randn(1, 3, 16, 16) * (1 + grid[0] ** 2).sqrt(), grid,
                      {"model_options": {}, "seed": 0}, callback=remember, guidance=guidance,
                      discrete_sigmas=sigmas)
    assert len(alive_at_call) == 3
    assert alive_at_call == [[], [], []], f"held through the model call: {alive_at_call}"
