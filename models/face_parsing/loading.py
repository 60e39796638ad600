"""Builds whichever face parser a checkpoint holds: facexlib's ParseNet or BiSeNet (their own
classes, never their downloaders) or the ResNet BiSeNet of yakhyo/face-parsing."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .bisenet_resnet import MARKER_KEY as RESNET_BISENET_MARKER
from .bisenet_resnet import NUM_CLASSES, resnet_bisenet_from_state_dict

PARSER_MARKER_KEYS = {
    "parsenet": "encoder.0.conv2d.weight",
    "bisenet_facexlib": "cp.resnet.conv1.weight",
    "bisenet_resnet": RESNET_BISENET_MARKER,
}
PARSENET_SIZE = 512


def parser_backend(state_dict: Mapping[str, torch.Tensor]) -> str:
    for backend, marker in PARSER_MARKER_KEYS.items():
        if marker in state_dict:
            return backend
    raise ValueError("not a face parser: it has none of the marker keys "
                     f"{', '.join(PARSER_MARKER_KEYS.values())}")


def face_parser_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[nn.Module, str]:
    """(network in eval mode on the CPU, backend name); strict loading."""
    backend = parser_backend(state_dict)
    if backend == "bisenet_resnet":
        return resnet_bisenet_from_state_dict(state_dict), backend
    if backend == "bisenet_facexlib":
        from facexlib.parsing.bisenet import BiSeNet
        network = BiSeNet(num_class=NUM_CLASSES)
    else:
        from facexlib.parsing.parsenet import ParseNet
        network = ParseNet(in_size=PARSENET_SIZE, out_size=PARSENET_SIZE, parsing_ch=NUM_CLASSES)
    network.load_state_dict(dict(state_dict), strict=True)
    return network.eval(), backend
