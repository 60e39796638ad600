"""BiSeNet face parser with a ResNet-18/34 backbone, laid out like yakhyo/face-parsing (MIT).

SSDiff parses the coarse restoration with this network and its published `resnet34.pt`
(yakhyo/face-parsing release; `resnet18.pt` is its smaller sibling). Module and parameter names
match that repository's `models/bisenet.py` and `models/resnet.py`, so both files load strictly
and unchanged. Written anew from the architecture; no code is copied.

Differences from upstream, all without effect on the weights or the outputs:
- upstream builds its backbone as torchvision's `resnet18/34(weights=DEFAULT)` and so downloads
  ImageNet weights before the checkpoint is even read; here the backbone is built empty and
  nothing ever touches the network;
- the backbone keeps its 1000-way `fc` (unused in the forward pass) only because the published
  files contain `fpn.backbone.fc.weight`/`.bias` and upstream loads them strictly;
- SSDiff's copy of the network also returns the fused feature map as a fourth output; here it is
  returned only on request (`return_fused=True`).

Labels are CelebAMask-HQ's 19 classes (0 background, 1 skin, ... 17 hair, 18 hat).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..state_dicts import unwrap_state_dict

NUM_CLASSES = 19
BACKBONE_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
"""BasicBlocks per stage; the two files differ only here."""

MARKER_KEY = "fpn.backbone.layer1.0.conv1.weight"
"""Present in every checkpoint of this architecture (ResNet-18 and ResNet-34 alike)."""
RESNET34_PREFIX = "fpn.backbone.layer1.2."
"""The third block of the first stage exists only in ResNet-34."""
HEAD_KEY = "conv_out.conv.weight"
"""The main head's last 1x1 convolution: its output channels are the class count."""

_OTHER_PARSERS = {
    "cp.resnet.conv1.weight": "facexlib's BiSeNet (parsing_bisenet.pth)",
    "encoder.0.conv2d.weight": "ParseNet (parsing_parsenet.pth)",
}


def _global_average(x: torch.Tensor) -> torch.Tensor:
    """Mean over the whole feature map, kept as 1 x 1 (upstream pools with the map's own size)."""
    return F.avg_pool2d(x, kernel_size=(int(x.shape[2]), int(x.shape[3])))


# --- backbone: torchvision's ResNet layout (conv1, bn1, layer1..4, fc), BasicBlocks only --------

class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Returns the stride-8, -16 and -32 feature maps (128, 256 and 512 channels)."""

    def __init__(self, blocks: tuple[int, int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        in_channels = 64
        for stage, (count, width) in enumerate(zip(blocks, widths), start=1):
            stride = 1 if stage == 1 else 2
            layers = [BasicBlock(in_channels, width, stride)]
            layers += [BasicBlock(width, width) for _ in range(count - 1)]
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
            in_channels = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, 1000)  # ImageNet classifier: unused, kept for strict loading

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


# --- BiSeNet parts (names as upstream: conv/norm/relu, conv_block, attention, ...) --------------

class ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(x)))


class SegmentationHead(nn.Module):
    """3x3 conv-BN-ReLU then a 1x1 projection to class logits (upstream's BiSeNetOutput)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv_block = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_block(x))


class AttentionRefinement(nn.Module):
    """Channel attention from the globally pooled feature, multiplied back onto it."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_block = ConvBNReLU(in_channels, out_channels, 3)
        self.attention = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_block(x)
        return feat * self.attention(_global_average(feat))


class ContextPath(nn.Module):
    """Backbone plus top-down refinement: 1/32 and 1/16 context brought to 1/16 and 1/8."""

    def __init__(self, backbone: str):
        super().__init__()
        self.backbone = ResNetBackbone(BACKBONE_BLOCKS[backbone])
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.backbone(x)
        context = self.conv_avg(_global_average(feat32))
        context = F.interpolate(context, feat32.shape[2:], mode="nearest")

        up32 = F.interpolate(self.arm32(feat32) + context, feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest")
        up16 = self.conv_head16(up16)
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    """Concatenated spatial (1/8 backbone) and context features, plus a squeeze-excite residual."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_block = ConvBNReLU(in_channels, out_channels, 1)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.conv_block(torch.cat([spatial, context], dim=1))
        weight = self.sigmoid(self.conv2(self.relu(self.conv1(_global_average(feat)))))
        return feat * weight + feat


class ResNetBiSeNet(nn.Module):
    """yakhyo/face-parsing's `BiSeNet(num_classes, backbone_name)`; no pretrained weights.

    `forward(x)` returns `(out, out16, out32)`: class logits of the fused head and of the two
    auxiliary heads (on the 1/8 and 1/16 context features), each bilinearly upsampled
    (align_corners=True) to the input's H x W. Use `out`; argmax over its channels gives labels.
    With `return_fused=True` the 256-channel 1/8-scale fused feature is appended, as SSDiff's copy
    of the network returns it. Expects `priors.parsing.normalise_for_parsing` input.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, backbone: str = "resnet34"):
        super().__init__()
        if backbone not in BACKBONE_BLOCKS:
            raise ValueError(f"backbone must be one of {sorted(BACKBONE_BLOCKS)}, got {backbone!r}")
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.fpn = ContextPath(backbone)
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = SegmentationHead(256, 256, num_classes)
        self.conv_out16 = SegmentationHead(128, 64, num_classes)
        self.conv_out32 = SegmentationHead(128, 64, num_classes)

    def forward(self, x: torch.Tensor, return_fused: bool = False) -> tuple[torch.Tensor, ...]:
        size = x.shape[2:]
        feat8, context8, context16 = self.fpn(x)
        fused = self.ffm(feat8, context8)
        outputs = tuple(
            F.interpolate(head(feat), size, mode="bilinear", align_corners=True)
            for head, feat in ((self.conv_out, fused), (self.conv_out16, context8),
                               (self.conv_out32, context16))
        )
        return outputs + (fused,) if return_fused else outputs


def resnet_bisenet_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> ResNetBiSeNet:
    """Builds the network a yakhyo/face-parsing state dict describes and loads it strictly.

    Accepts the published files as read (`torch.load` of `resnet18.pt`/`resnet34.pt`, or the same
    tensors from a .safetensors file), with or without a DataParallel `module.` prefix. The
    backbone is told by `fpn.backbone.layer1.2.*` (ResNet-34 only), the class count by the main
    head's shape. Returns the network in eval mode, on the CPU, in float32.
    """
    state_dict = unwrap_state_dict(state_dict)
    if MARKER_KEY not in state_dict:
        known = [name for marker, name in _OTHER_PARSERS.items() if marker in state_dict]
        hint = f"; it looks like {known[0]}" if known else ""
        raise ValueError(
            f"not a yakhyo/face-parsing BiSeNet (ResNet-18/34) checkpoint: key {MARKER_KEY!r} "
            f"is missing{hint}"
        )
    backbone = ("resnet34" if any(key.startswith(RESNET34_PREFIX) for key in state_dict)
                else "resnet18")
    if HEAD_KEY not in state_dict:
        raise ValueError(f"BiSeNet checkpoint has no main head: key {HEAD_KEY!r} is missing")
    network = ResNetBiSeNet(num_classes=int(state_dict[HEAD_KEY].shape[0]), backbone=backbone)
    network.load_state_dict(state_dict, strict=True)
    return network.eval()
