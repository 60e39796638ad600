"""The whole photo in colour: DDColor (models/ddcolor, through spandrel_extra_arches) on the
photo's lightness, its colour combined with the photo's own full-resolution lightness
(priors/colourise.py)."""
from __future__ import annotations

import functools

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed, progress
from ..models import ddcolor
from ..priors.colourise import COLOUR_BAND_BYTES, band_rows, colourise
from . import boundary
from .input_checks import checked_inputs
from .loaders import CheckpointLoader, in_precision, precision_input, precision_refusal
from .types import ColouriserType


DDCOLOR_BYTES_PER_INPUT_PIXEL = 3600
"""DDColor's working memory per pixel of its square input, fp32: measured 3,426 (ConvNeXt-T) and
3,539 (ConvNeXt-L) bytes at 512 x 512 with the released decoder (100 queries, 9 layers), on the CPU
under bench/memory.py's profiler; about 0.9 GiB at 512."""


def working_bytes(input_size: int) -> int:
    """Device memory a colourisation needs beside the weights: the network at its input size and one
    band of the full-resolution colour maths; it does not grow with the photo."""
    return DDCOLOR_BYTES_PER_INPUT_PIXEL * input_size ** 2 + COLOUR_BAND_BYTES


PRECISIONS = ("fp32", "bf16")
PRECISION_WHY = "spandrel's descriptor of the architecture marks fp16 unsupported"


class SSDiffColouriserLoader(CheckpointLoader):
    FILE = ddcolor.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColouriserLoader",
            display_name="SSDiff Colouriser Loader (DDColor)",
            category="SSDiff/colour",
            description=("DDColor, the colourisation network (ddcolor_modelscope.pth and the other released files, "
                         "in models/ddcolor), for SSDiff Colourise. Read without running pickled code; a file of "
                         "another architecture (an upscaler, LaMa) is refused by name."),
            inputs=[cls.checkpoint_input(),
                    io.Int.Input("input_size", default=ddcolor.DEFAULT_INPUT_SIZE, min=ddcolor.MIN_INPUT_SIZE,
                                 max=ddcolor.MAX_INPUT_SIZE, step=ddcolor.INPUT_MULTIPLE,
                                 tooltip="the square side the network sees the photo at (the released files: "
                                         "512); the colour comes back at the photo's own size"),
                    precision_input(PRECISIONS, PRECISION_WHY)],
            outputs=[ColouriserType.Output(display_name="colouriser")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None, precision: str | None = None) -> bool | str:
        return precision_refusal(precision, PRECISIONS, "DDColor", PRECISION_WHY) or cls.validate_checkpoint(model_name)

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str, input_size: int, precision: str = "fp32") -> io.NodeOutput:
        network = cls.load(model_name, functools.partial(ddcolor.build, input_size=input_size))
        return io.NodeOutput(managed.managed(in_precision(network, precision, PRECISIONS, "DDColor", PRECISION_WHY)))


class SSDiffColourise(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColourise",
            display_name="SSDiff Colourise (DDColor)",
            category="SSDiff/colour",
            description=("The whole photo in colour. DDColor sees the photo's lightness at its own size; the colour "
                         "it predicts (CIELAB a*, b*) is brought back to the photo's full resolution and combined "
                         "with the photo's own lightness, so no detail is lost: the result's lightness equals the "
                         "input's. A photo already in colour gets new colour (only its lightness is read). Any "
                         "size, batches, grayscale and RGBA (alpha kept)."),
            inputs=[ColouriserType.Input("colouriser", tooltip="from SSDiff Colouriser Loader"),
                    io.Image.Input("image", tooltip="the whole photos (grayscale, sepia, faded or in colour)")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, colouriser: torch.nn.Module, image: torch.Tensor) -> io.NodeOutput:
        managed.load(colouriser, working_bytes(ddcolor.input_size_of(colouriser)))
        photos = boundary.channels_first(image).float()
        coloured = managed.smaller_on_out_of_memory(
            lambda rows: colourise(colouriser, photos, check_interrupt=progress.item_reporter(image.shape[0]),
                                   rows=rows, check_band=device.check_interrupt),
            band_rows(image.shape[2]), 1, "colourising the photo's full resolution (rows at a time)")
        return io.NodeOutput(boundary.channels_last(coloured))
