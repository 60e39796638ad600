"""FaceUNetConfig.forward_bytes, which refuses work too big for the machine before it starts,
against the working memory a forward pass measurably takes on the CPU (bench/memory.py): close,
and never above it, so that only work that cannot fit is refused."""
from __future__ import annotations

import pytest
import torch

from bench.memory import WorkingMemory
from harness.tiny_models import TINY_FACE_UNET
from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig


@pytest.mark.parametrize("config, size", [(TINY_FACE_UNET, 128), (TINY_FACE_UNET, 256),
                                          (FaceUNetConfig.ffhq512(), 128)], ids=["tiny-128", "tiny-256", "ffhq512-128"])
def test_the_estimate_is_close_below_the_measured_working_memory(config, size):
    network = FaceUNet(config).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        measured = WorkingMemory(torch.device("cpu")).peak_mib(lambda: network(x, torch.tensor([10.0])))
    estimate = config.forward_bytes(1, size, size) / 2 ** 20
    assert 0.7 * measured <= estimate <= measured, (estimate, measured)


def test_attention_maps_grow_with_the_square_of_the_tokens():
    without = TINY_FACE_UNET.forward_bytes(1, 1024, 1024, attention_maps=False)
    assert TINY_FACE_UNET.forward_bytes(1, 2048, 2048, attention_maps=False) == pytest.approx(4 * without, rel=0.01)
    assert TINY_FACE_UNET.forward_bytes(1, 2048, 2048) > 8 * TINY_FACE_UNET.forward_bytes(1, 1024, 1024)
