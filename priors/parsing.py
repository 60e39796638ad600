"""Running a face parser (built by models/face_parsing) and reporting CelebAMask-HQ labels.

| backend | marker key | input | label order |
|---|---|---|---|
| ParseNet (PSFRGAN, facexlib) | encoder.0.conv2d.weight | RGB 512, [-1, 1] | PSFRGAN's, mapped here |
| BiSeNet ResNet-18 (facexlib) | cp.resnet.conv1.weight | RGB 512, ImageNet mean/std | CelebAMask-HQ |
| BiSeNet ResNet-18/34 (yakhyo; SSDiff's resnet34.pt) | fpn.backbone.layer1.0.conv1.weight | RGB 512, ImageNet mean/std | CelebAMask-HQ |
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from ..ssdiff_core.variant import PAPER, MethodVariant


PARSING_SIZE = 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PARSENET_TO_CELEBAMASK_HQ = (0, 1, 10, 6, 4, 5, 2, 3, 7, 8, 11, 12, 13, 17, 18, 9, 15, 14, 16)
"""ParseNet id -> CelebAMask-HQ id (ParseNet's 13 is hair, BiSeNet's 13 the lower lip)."""

PREVIEW_COLOURS = torch.tensor([
    [0, 0, 0], [204, 153, 119], [102, 51, 0], [153, 76, 0], [0, 102, 255], [0, 153, 255],
    [255, 255, 0], [204, 102, 153], [153, 51, 102], [255, 204, 0], [255, 102, 51], [204, 0, 51],
    [255, 0, 102], [153, 0, 51], [255, 204, 153], [102, 255, 204], [51, 102, 204], [76, 38, 19],
    [128, 128, 128]], dtype=torch.float32) / 255
"""One colour per CelebAMask-HQ label, for the preview image."""


ParserBackend = Literal["parsenet", "bisenet_facexlib", "bisenet_resnet"]
"""facexlib's ParseNet and BiSeNet, yakhyo/face-parsing's ResNet BiSeNet."""


@dataclass
class FaceParser:
    """A parsing network and which of the backends it is."""
    network: torch.nn.Module
    backend: ParserBackend

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device


def normalise_for_parsing(image: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> the network's input: ImageNet mean/std per channel.

    This is the whole of upstream's tensor preprocessing (`inference.py`: `ToTensor()` then
    `Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))`); its training transforms use the
    same constants. No resizing is done here: upstream's inference first resizes the PIL image to
    512 x 512 (PIL bilinear, aspect ratio not kept), takes the argmax of the first output and
    resizes that label map back to the original size with nearest neighbour. Training saw
    CelebAMask-HQ faces resized 1024 -> 512 (bilinear), then randomly rescaled by 0.75-2.0 and
    cropped to 448 x 448 (train.py's default `--image-size`), so parse aligned faces at 512 x 512.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected a B x 3 x H x W RGB image, got shape {tuple(image.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


def _network_input(parser: FaceParser, faces: torch.Tensor, variant: MethodVariant) -> torch.Tensor:
    if parser.backend == "parsenet":
        return faces * 2 - 1
    if variant.parser_input_unnormalised and parser.backend == "bisenet_resnet":
        # The released SSDiff code hands its parser the [-1, 1] image without normalisation.
        return faces * 2 - 1
    return normalise_for_parsing(faces)


def pil_nearest_indices(size: int, source_size: int) -> torch.Tensor:
    """The source pixel each of `size` output pixels takes in PIL's NEAREST resize, which the
    reference uses to bring its label map back: the pixel centre, its position added up step by
    step in double precision as Pillow does, so that ties fall where they fall there (512 -> 600
    px: output column 37 takes 31, not the exact 32; torch's nearest-exact takes 32)."""
    step = source_size / size
    position, indices = step / 2, []
    for _ in range(size):
        indices.append(int(position))
        position += step
    return torch.tensor(indices)


def parse_faces(parser: FaceParser, faces: torch.Tensor, check_interrupt: Callable[[], None] | None = None, *,
                variant: MethodVariant = PAPER) -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> B x H x W CelebAMask-HQ labels (int64). Each face is
    parsed at 512 x 512, the size the networks were trained at, and the labels resized back as
    the reference does. `variant`: RELEASED_CODE gives the input as the released SSDiff code does."""
    labels = []
    to_celebamask = torch.tensor(PARSENET_TO_CELEBAMASK_HQ, device=parser.device)
    height, width = faces.shape[-2:]
    rows = pil_nearest_indices(height, PARSING_SIZE).to(parser.device)
    columns = pil_nearest_indices(width, PARSING_SIZE).to(parser.device)
    for face in faces:
        if check_interrupt is not None:
            check_interrupt()
        resized = F.interpolate(face[None].float().to(parser.device), size=(PARSING_SIZE, PARSING_SIZE),
                                mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            logits = parser.network(_network_input(parser, resized, variant))[0]
        label = logits.argmax(dim=1)[:, rows][:, :, columns]
        if parser.backend == "parsenet":
            label = to_celebamask[label]
        labels.append(label.to(faces.device))
    return torch.cat(labels)


def preview(labels: torch.Tensor) -> torch.Tensor:
    """B x H x W labels -> B x H x W x 3 colour-coded image."""
    return PREVIEW_COLOURS.to(labels.device)[labels]
