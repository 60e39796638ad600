"""Loading the face DDPM as a ComfyUI MODEL, and the empty conditioning its samplers need."""
from __future__ import annotations

from comfy_api.latest import io

from ..comfy_adapter import face_model
from ..models import guided_diffusion
from ..models.files import SSDIFF_FOLDER
from .loaders import CheckpointLoader
from .input_checks import checked_inputs


class SSDiffFaceDiffusionLoader(CheckpointLoader):
    FILE = guided_diffusion.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceDiffusionLoader",
            display_name="SSDiff Face Diffusion Loader",
            category="SSDiff",
            description=("Loads the pixel-space face DDPM (guided-diffusion UNet, e.g. "
                         f"{guided_diffusion.FILE.expected}) from models/{SSDIFF_FOLDER}. The MODEL works "
                         "with KSampler and SamplerCustom (use SSDiff Unconditional for positive/"
                         "negative); the VAE is ComfyUI's pixel-space VAE, for VAEEncode/VAEDecode."),
            inputs=[
                cls.checkpoint_input("ckpt_name"),
                io.Combo.Input("weight_dtype", options=list(face_model.WEIGHT_DTYPES), default="fp32",
                               tooltip="fp32 as in the paper; bf16 halves memory and is faster on GPUs"),
            ],
            outputs=[io.Model.Output(), io.Vae.Output(display_name="pixel VAE")],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name: str | None = None) -> bool | str:
        return cls.validate_checkpoint(ckpt_name)

    @classmethod
    @checked_inputs
    def execute(cls, ckpt_name: str, weight_dtype: str) -> io.NodeOutput:
        return io.NodeOutput(face_model.load_face_ddpm(ckpt_name, weight_dtype), face_model.pixel_space_vae())


class SSDiffUnconditional(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffUnconditional",
            display_name="SSDiff Unconditional",
            category="SSDiff",
            description="Empty conditioning for the unconditional face DDPM in KSampler or "
                        "SamplerCustom (wire it to both positive and negative; use cfg 1.0).",
            inputs=[],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    @checked_inputs
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(face_model.empty_conditioning())
