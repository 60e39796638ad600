"""Networks that gradients flow through, whoever built them."""
from __future__ import annotations

import copy

import torch


def autograd_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A copy of `network` with normal tensors: a loader that ran in a ComfyUI node built it under
    inference mode, and autograd cannot save inference tensors for backward."""
    with torch.inference_mode(False):
        network = copy.deepcopy(network)
        for tensor in list(network.parameters()) + list(network.buffers()):
            tensor.data = tensor.data.clone()
    return network
