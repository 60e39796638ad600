"""Face parsing: the parser loader, FaceParse, and label-map images as parsings."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed
from ..models import face_parsing
from ..priors.parsing import FaceParser, parse_faces, preview
from ..ssdiff_core.variant import variant_of
from ..ssdiff_core.regions import CELEBAMASK_HQ_LABELS, REGION_GROUPS, region_mask, resolve_regions
from . import boundary
from .loaders import CheckpointLoader
from .types import FaceParserType, ParsingType
from .input_checks import checked_inputs


class SSDiffFaceParserLoader(CheckpointLoader):
    FILE = face_parsing.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceParserLoader",
            display_name="SSDiff Face Parser Loader",
            category="SSDiff/parsing",
            description=("A face parser, recognised from its weights: facexlib's ParseNet (best on "
                         "degraded faces) or BiSeNet, or the ResNet-34 BiSeNet the SSDiff authors use."),
            inputs=[cls.checkpoint_input()],
            outputs=[FaceParserType.Output(display_name="parser")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        network, backend = cls.load(model_name, face_parsing.build)
        return io.NodeOutput(FaceParser(managed.managed(network), backend))


class SSDiffFaceParse(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceParse",
            display_name="SSDiff Face Parse",
            category="SSDiff/parsing",
            description=("Parses aligned faces into the 19 CelebAMask-HQ regions (whatever the "
                         "parser's own label order). SSDiff parses the coarse restoration."),
            inputs=[
                FaceParserType.Input("parser", tooltip="from SSDiff Face Parser Loader"),
                io.Image.Input("image", tooltip="aligned faces; SSDiff parses the coarse restoration"),
                io.String.Input("regions", default="face",
                                tooltip="regions for the mask, comma-separated: "
                                        f"{', '.join(CELEBAMASK_HQ_LABELS)}, or the groups "
                                        f"{', '.join(REGION_GROUPS)}"),
                io.Boolean.Input("reference_compat", default=False,
                                 tooltip="feed the ResNet-34 parser [-1, 1] images without ImageNet "
                                         "normalisation, as the released SSDiff code does"),
            ],
            outputs=[ParsingType.Output(display_name="parsing"), io.Mask.Output(display_name="mask"),
                     io.Image.Output(display_name="preview")],
        )

    @classmethod
    def validate_inputs(cls, regions: str | None = None) -> bool | str:
        if regions is None:  # linked: checked when the node executes
            return True
        try:
            resolve_regions(regions)
        except ValueError as error:
            return str(error)
        return True

    @classmethod
    @checked_inputs
    def execute(cls, parser: FaceParser, image: torch.Tensor, regions: str,
                reference_compat: bool) -> io.NodeOutput:
        managed.load(parser.network, managed.image_bytes(image, 32))
        labels = parse_faces(parser, boundary.image_to_rgb(image), device.check_interrupt,
                             variant=variant_of(reference_compat))
        mask = region_mask(labels, resolve_regions(regions))[:, 0].float()
        return io.NodeOutput(labels, mask, preview(labels))


class SSDiffLabelMapToParsing(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffLabelMapToParsing",
            display_name="SSDiff Label Map to Parsing",
            category="SSDiff/parsing",
            description=("Reads a face-parsing label map saved as a grayscale PNG whose pixel value "
                         "is the CelebAMask-HQ class id (0 background, 1 skin, ... 17 hair, 18 hat), "
                         "as face-parsing tools save them."),
            inputs=[io.Image.Input("label_map", tooltip="the label-map PNG from Load Image: pixel value = "
                                                         "CelebAMask-HQ id (0 to 18), not a colour preview")],
            outputs=[ParsingType.Output(display_name="parsing")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, label_map: torch.Tensor) -> io.NodeOutput:
        labels = torch.round(label_map[..., 0].float() * 255).long()
        largest = int(labels.max())
        if largest >= len(CELEBAMASK_HQ_LABELS):
            raise ValueError(f"label_map holds value {largest}, but CelebAMask-HQ ids run from 0 to "
                             f"{len(CELEBAMASK_HQ_LABELS) - 1}: load the raw label PNG, not a "
                             "colour-coded preview")
        return io.NodeOutput(labels)
