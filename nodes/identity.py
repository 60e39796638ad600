"""The person's identity: the ArcFace network that measures it (SSDiff Face Recognition Loader),
and how far restored faces are from reference faces of the same person (SSDiff Identity Angle).
The identity guidance term itself is an input of the stages (stage_inputs.identity_inputs)."""
from __future__ import annotations

import json

import torch
from comfy_api.latest import io, ui

from ..comfy_adapter import managed
from ..models import face_recognition
from ..priors.identity import identity_embeddings, reference_identity
from ..ssdiff_core.iteration import embedding_angle
from . import boundary
from .input_checks import checked_inputs
from .loaders import CheckpointLoader
from .types import FaceRecognitionType


class SSDiffFaceRecognitionLoader(CheckpointLoader):
    FILE = face_recognition.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceRecognitionLoader",
            display_name="SSDiff Face Recognition Loader",
            category="SSDiff/identity",
            description=("An ArcFace network (facexlib's recognition_arcface_ir_se50.pth): for the stages' identity "
                         "guidance towards reference faces, SSDiff Identity Angle, and SSDiff Iterate's identity "
                         "drift."),
            inputs=[cls.checkpoint_input()],
            outputs=[FaceRecognitionType.Output(display_name="face_recognition")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        return io.NodeOutput(managed.managed(cls.load(model_name, face_recognition.build)))


class SSDiffIdentityAngle(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffIdentityAngle",
            display_name="SSDiff Identity Angle",
            category="SSDiff/identity",
            description=("How far each face is from the person of the reference faces: the angle, in degrees, "
                         "between its ArcFace embedding and the references' mean (0: the same embedding; "
                         "unrelated faces lie far apart). Compare a restoration with and without identity "
                         "guidance."),
            inputs=[FaceRecognitionType.Input("face_recognition", tooltip="ArcFace (SSDiff Face Recognition Loader)"),
                    io.Image.Input("faces", tooltip="aligned faces to measure, e.g. SSDiff Sampler's restored"),
                    io.Image.Input("reference_faces",
                                   tooltip="aligned faces of the same person (SSDiff Face Crop on other photos)")],
            outputs=[io.Float.Output(display_name="mean_angle"), io.String.Output(display_name="angles")],
            is_output_node=True,
        )

    @classmethod
    @checked_inputs
    def execute(cls, face_recognition: torch.nn.Module, faces: torch.Tensor,
                reference_faces: torch.Tensor) -> io.NodeOutput:
        for name, images in (("faces", faces), ("reference_faces", reference_faces)):
            if images.shape[1] != images.shape[2]:
                raise ValueError(f"{name} are {images.shape[2]} x {images.shape[1]} px, not aligned faces: give "
                                 "faces from SSDiff Face Crop")
        managed.load(face_recognition)
        embeddings = identity_embeddings(face_recognition, boundary.image_to_rgb(faces))
        reference = reference_identity(face_recognition, boundary.image_to_rgb(reference_faces))
        angles = [embedding_angle(embedding[None], reference[None]) for embedding in embeddings]
        mean = sum(angles) / len(angles)
        shown = f"identity angle to the references: {mean:.2f} degrees (faces: {', '.join(f'{a:.2f}' for a in angles)})"
        return io.NodeOutput(mean, json.dumps({"angles": angles}), ui=ui.PreviewText(shown))
