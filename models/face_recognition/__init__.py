"""ArcFace face embeddings: the IR / IR-SE ResNets of InsightFace_Pytorch as facexlib builds them
(`facexlib.recognition.arcface_arch.Backbone`; facexlib publishes the IR-SE-50 as
recognition_arcface_ir_se50.pth), read from a state dict whatever its depth."""
from __future__ import annotations

import re

import torch

from ..files import Kind, ModelFile

FILE = ModelFile("face recognition model (ArcFace)", Kind.FACE_RECOGNITION,
                 marker_keys=("input_layer.0.weight", "output_layer.3.weight"))

UNITS_TO_LAYERS = {24: 50, 49: 100, 50: 152}
"""Bottleneck units in `body` -> the depth facexlib's Backbone is built with."""
DROP_RATIO = 0.6
"""facexlib's; dropout is inactive in eval mode."""


def build(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The ArcFace backbone of these weights, float32, in eval mode on the CPU: 112 x 112 RGB in
    [-1, 1] -> unit-length 512-d embeddings."""
    from facexlib.recognition.arcface_arch import Backbone

    units = {int(match.group(1)) for key in state_dict if (match := re.match(r"body\.(\d+)\.", key))}
    layers = UNITS_TO_LAYERS.get(len(units))
    if layers is None:
        raise ValueError(f"an ArcFace backbone of {len(units)} bottleneck units is not one of facexlib's "
                         f"(IR / IR-SE 50, 100, 152: {sorted(UNITS_TO_LAYERS)} units)")
    mode = "ir_se" if any(".res_layer.5.fc1." in key for key in state_dict) else "ir"
    network = Backbone(num_layers=layers, drop_ratio=DROP_RATIO, mode=mode)
    network.load_state_dict(state_dict, strict=True)
    return network.float().eval()
