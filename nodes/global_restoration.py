"""The whole photo's global restoration of "Bringing Old Photos Back to Life" (BOPBTL, stage 1):
its three networks loaded from the files of its global_checkpoints.zip, and run on whole photos
(priors/global_restoration.py)."""
from __future__ import annotations

import os

import torch
from comfy_api.latest import io

from ..comfy_adapter import checkpoints, device, managed, progress
from ..models import bopbtl_global
from ..models.bopbtl_global import DEFAULT_CHUNK_BYTES, GlobalRestorationNetworks
from ..priors.global_restoration import POSTPROCESSING, restore_global, working_bytes
from . import boundary
from .input_checks import checked_inputs
from .loaders import in_precision, precision_input, precision_refusal
from .types import GlobalRestorationType

DECODER_OF_MAPPING = {"mapping_quality": "VAE_B_quality", "mapping_scratch": "VAE_B_scratch",
                      "mapping_Patch_Attention": "VAE_B_scratch"}
"""The released pairs (BOPBTL run.py): the quality mapping decodes with VAE_B_quality, both scratch
mappings with VAE_B_scratch. The two VAE_B files have the same keys, so only their folder names
tell them apart."""
PRECISIONS = ("fp32", "bf16")
PRECISION_WHY = ("in fp16 the non-local attention's weights underflow to zero rows; bf16 keeps fp32's "
                 "range")
FILES = {"encoder": bopbtl_global.ENCODER_FILE, "mapping": bopbtl_global.MAPPING_FILE,
         "decoder": bopbtl_global.DECODER_FILE}


def _released_folder(name: str) -> str:
    """The zip's folder a file name keeps (restoration/<folder>/<file>), or '' for another name."""
    parts = name.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def mismatched_pair(mapping: str, decoder: str) -> str | None:
    """Why a mapping and a decoder named as in the release do not go together, or None."""
    wanted = DECODER_OF_MAPPING.get(_released_folder(mapping))
    given = _released_folder(decoder)
    if wanted is None or given not in DECODER_OF_MAPPING.values() or given == wanted:
        return None
    return (f"decoder '{decoder}' does not go with mapping '{mapping}': BOPBTL decodes "
            f"{_released_folder(mapping)} with {wanted} (restoration/{wanted}/latest_net_G.pth)")


class SSDiffGlobalRestorationLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs = [io.Combo.Input(name, options=checkpoints.choices(kind),
                                 tooltip=f"{kind.expected} in models/{kind.folders[0]}; {kind.source}")
                  for name, kind in FILES.items()]
        inputs.append(precision_input(PRECISIONS, PRECISION_WHY))
        return io.Schema(
            node_id="SSDiffGlobalRestorationLoader",
            display_name="SSDiff Global Restoration Loader (BOPBTL)",
            category="SSDiff/scratches",
            description=("The three networks of BOPBTL's whole-photo restoration: VAE_A's encoder, a mapping "
                         "(quality: faded, blurred, noisy photos; scratch: with a damage mask; Patch_Attention: "
                         "the scratch mode for high-resolution photos) and VAE_B's decoder (VAE_B_quality with the "
                         "quality mapping, VAE_B_scratch with the scratch mappings). Put the zip's "
                         "checkpoints/restoration folder into models/ssdiff as restoration/. Files are read "
                         "without running pickled code and must hold every key of the network."),
            inputs=inputs,
            outputs=[GlobalRestorationType.Output(display_name="global_restoration")],
        )

    @classmethod
    def validate_inputs(cls, encoder: str | None = None, mapping: str | None = None,
                        decoder: str | None = None, precision: str | None = None) -> bool | str:
        refusal = precision_refusal(precision, PRECISIONS, "BOPBTL's global restoration", PRECISION_WHY)
        if refusal is not None:
            return refusal
        for name, value in (("encoder", encoder), ("mapping", mapping), ("decoder", decoder)):
            if value is None:
                continue
            try:
                checkpoints.model_path(FILES[name], value)
            except checkpoints.CheckpointError as error:
                return str(error)
        if mapping is not None and decoder is not None:
            return mismatched_pair(mapping, decoder) or True
        return True

    @classmethod
    @checked_inputs
    def execute(cls, encoder: str, mapping: str, decoder: str, precision: str = "fp32") -> io.NodeOutput:
        mismatch = mismatched_pair(mapping, decoder)
        if mismatch is not None:
            raise ValueError(mismatch)
        networks = GlobalRestorationNetworks(
            checkpoints.load_checkpoint(FILES["encoder"], encoder, bopbtl_global.build_encoder),
            checkpoints.load_checkpoint(FILES["mapping"], mapping, bopbtl_global.build_mapping),
            checkpoints.load_checkpoint(FILES["decoder"], decoder, bopbtl_global.build_decoder))
        for network in (networks.encoder, networks.mapping, networks.decoder):
            managed.managed(in_precision(network, precision, PRECISIONS, "BOPBTL's global restoration", PRECISION_WHY))
        return io.NodeOutput(networks)


MIN_CHUNK_BYTES = 1 << 23
"""The smallest attention chunk budget (8 MiB) the out-of-memory retry goes down to."""
MODE_NAMES = {"quality": "the quality mapping", "scratch": "the scratch mapping",
              "scratch_hr": "the high-resolution (Patch_Attention) scratch mapping"}


class SSDiffGlobalRestoration(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffGlobalRestoration",
            display_name="SSDiff Global Restoration (BOPBTL)",
            category="SSDiff/scratches",
            description=("BOPBTL's restoration of the whole photo, as released (its test.py): the quality mapping "
                         "cleans fading, blur, noise and film grain; the scratch mappings also repaint the damage "
                         "a mask marks (SSDiff Scratch Mask on the whole photo). The networks see the photo at "
                         "its own size (sides rounded to multiples of 4, or 16 with a mask) and the result comes "
                         "back at the photo's size. The non-local attention runs in chunks, so memory grows "
                         "with the pixels, not their square; time still grows with the square: on the CPU a "
                         "3 MP photo took 40 minutes (docs/benchmarks.md), a GPU is the place for large scans. "
                         "Any size, batches, grayscale and RGBA (the alpha is dropped, as the release reads RGB)."),
            inputs=[GlobalRestorationType.Input("global_restoration",
                                                tooltip="from SSDiff Global Restoration Loader"),
                    io.Image.Input("image", tooltip="the whole photos"),
                    io.Combo.Input("postprocess", options=list(POSTPROCESSING), default="released",
                                   tooltip="released: as BOPBTL saves it (stretched to the full range, 8-bit "
                                           "levels); model: the network's output as it is, clamped"),
                    io.Int.Input("mask_dilation", default=-1, min=-1, max=16,
                                 tooltip="grow the mask by this many 3 x 3 steps first; -1: as released (3 for "
                                         "the high-resolution mapping, 0 for the scratch mapping)"),
                    io.Mask.Input("mask", optional=True,
                                  tooltip="1 = damaged, at the photo's size: needed by the scratch mappings, "
                                          "refused by the quality mapping")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, global_restoration: GlobalRestorationNetworks, image: torch.Tensor, postprocess: str,
                mask_dilation: int, mask: torch.Tensor | None = None) -> io.NodeOutput:
        mode = global_restoration.mode
        if mode == "quality" and mask is not None:
            raise ValueError("mask: the quality mapping takes no mask; disconnect it, or load a scratch mapping "
                             "(restoration/mapping_scratch/...) with VAE_B_scratch to repair the damage it marks")
        if mode != "quality" and mask is None:
            raise ValueError(f"mask: {MODE_NAMES[mode]} repaints the damage a mask marks; connect one (SSDiff "
                             "Scratch Mask on the whole photo, or a painted mask), or load the quality mapping")
        _, height, width, _ = image.shape
        device.require_total_memory(
            working_bytes(height, width, mode), f"BOPBTL's global restoration of a {width}x{height} photo",
            "scale the photo down first (BOPBTL's own pipeline works at about 1 MP), or restore it in parts")
        masks = None
        if mask is not None:
            masks = boundary.mask_to_model(mask)
            boundary.require_batch(masks, image.shape[0], "mask", "image")
            if tuple(masks.shape[-2:]) != (height, width):
                raise ValueError(f"mask is {masks.shape[-1]} x {masks.shape[-2]} px but image is {width} x {height} "
                                 "px: give the mask of this photo at its own size (SSDiff Scratch Mask on the "
                                 "whole photo)")
        managed.load((global_restoration.encoder, global_restoration.mapping, global_restoration.decoder),
                     working_bytes(height, width, mode))
        photos = boundary.channels_first(image).float()

        def restore(chunk_bytes: int) -> torch.Tensor:
            return restore_global(global_restoration, photos, masks, postprocess=postprocess,
                                  mask_dilation=None if mask_dilation < 0 else mask_dilation, chunk_bytes=chunk_bytes,
                                  check_interrupt=progress.item_reporter(image.shape[0]))

        restored = managed.smaller_on_out_of_memory(restore, DEFAULT_CHUNK_BYTES, MIN_CHUNK_BYTES,
                                                    "BOPBTL's non-local attention (bytes per chunk)")
        return io.NodeOutput(boundary.channels_last(restored))
