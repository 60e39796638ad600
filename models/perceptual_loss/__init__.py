"""LPIPS (Zhang et al., CVPR 2018), the perceptual distance DT-BFR adds to the pixel loss when it
fine-tunes a restorer (weight 0.1), as the `lpips` package computes it on VGG16: the package's
linear heads (shipped inside it, calibrated on human judgements) over torchvision's ImageNet
VGG16, whose weights the user gives (the package itself would download them). The loss term
built on it is training.losses.PerceptualLoss."""
from __future__ import annotations

import warnings

import torch

from ..files import Kind, ModelFile

FILE = ModelFile("LPIPS backbone (torchvision's VGG16)", Kind.PERCEPTUAL_LOSS,
                 marker_keys=("features.0.weight", "features.28.weight"))

VGG16_CONVOLUTIONS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""Where torchvision's `vgg16().features` has its convolutions (the rest: ReLU, max pooling)."""
LPIPS_SLICE_STARTS = (0, 4, 9, 16, 23)
"""Where lpips' `slice1` .. `slice5` of those features begin: each ends at relu1_2 .. relu5_3."""
DEFAULT_WEIGHT = 0.1
"""DT-BFR's weight of LPIPS beside the L1 pixel loss (1.0)."""


def _lpips_key(vgg_key: str) -> str:
    """`features.N.weight` -> `sliceK.N.weight`, as lpips' vgg16 names the same layer."""
    index = int(vgg_key.split(".")[1])
    part = sum(index >= start for start in LPIPS_SLICE_STARTS)
    return f"slice{part}.{vgg_key.split('.', 1)[1]}"


def build(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """LPIPS-VGG of these VGG16 weights (a whole torchvision checkpoint or its `features` alone),
    frozen, float32, in eval mode on the CPU."""
    import lpips

    features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
    expected = {f"features.{index}.{name}" for index in VGG16_CONVOLUTIONS for name in ("weight", "bias")}
    if set(features) != expected:
        extra, missing = sorted(set(features) - expected), sorted(expected - set(features))
        found = f"it also holds {', '.join(extra[:3])}" if extra else f"it lacks {', '.join(missing[:3])}"
        raise ValueError(f"LPIPS needs torchvision's VGG16 (13 convolutions, no batch norm); {found} "
                         "(VGG19 or VGG16-BN weights?)")
    # pretrained: the linear heads inside the lpips package; pnet_rand: no download of the trunk
    # (lpips still asks torchvision with its deprecated `pretrained=`, which warns).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        network = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    network.net.load_state_dict({_lpips_key(key): value for key, value in features.items()}, strict=True)
    return network.float().eval().requires_grad_(False)
