"""Whole photos: face detector loading, FaceCrop (align to FFHQ 512) and FacePaste."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed
from ..models import mtcnn, retinaface
from ..models.files import FACE_DETECTION_FOLDER
from ..priors.face_detection import mtcnn_detector, retinaface_detector
from ..priors.faces import NO_FACE, NoFace, crop_faces, paste_faces, recrop_faces
from ..priors.tone import MONOCHROME_SPREAD, TONES, Tone
from . import boundary
from .loaders import CheckpointLoader
from .types import FaceDetectorType, FaceInfoType
from .input_checks import checked_inputs


DETECTOR_WORKING_BYTES = 1 << 30
"""The detectors' working memory beside their weights: they see the photo at most
priors.face_detection.DETECTION_LONG_SIDE px long (an estimate)."""


class SSDiffFaceDetectorLoader(CheckpointLoader):
    FILE = retinaface.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        files = cls.checkpoint_input()
        files.options = files.options + [mtcnn.CHOICE]
        return io.Schema(
            node_id="SSDiffFaceDetectorLoader",
            display_name="SSDiff Face Detector Loader",
            category="SSDiff/faces",
            description=f"RetinaFace (facexlib; the paper's detector) from models/{FACE_DETECTION_FOLDER}: "
                        f"{retinaface.FILE.expected} ({retinaface.FILE.source}). Or '{mtcnn.CHOICE}': "
                        f"facenet-pytorch's MTCNN, whose weights ship with the package ({mtcnn.INSTALL}).",
            inputs=[files],
            outputs=[FaceDetectorType.Output(display_name="detector")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None) -> bool | str:
        if model_name == mtcnn.CHOICE:
            return mtcnn.available() or f"{mtcnn.CHOICE} needs the facenet-pytorch package: {mtcnn.INSTALL}"
        return cls.validate_checkpoint(model_name)

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        target = device.compute_device()
        with torch.inference_mode(False):
            # built for the compute device (their code moves inputs to it), parked until Face Crop runs
            if model_name == mtcnn.CHOICE:
                return io.NodeOutput(mtcnn_detector(managed.managed(mtcnn.build(target))))
            network = cls.load(model_name, lambda state_dict: retinaface.build(state_dict, target))
        return io.NodeOutput(retinaface_detector(managed.managed(network)))


class SSDiffFaceCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceCrop",
            display_name="SSDiff Face Crop",
            category="SSDiff/faces",
            description=("Finds faces, aligns each to the FFHQ template and crops it (a batch, largest "
                         "face first). A photo without a face passes through: the crop is the whole "
                         "photo and SSDiff Face Paste returns the photo unchanged."),
            inputs=[
                FaceDetectorType.Input("detector", tooltip="from SSDiff Face Detector Loader"),
                io.Image.Input("image", tooltip="the whole photos (a batch is searched photo by photo)"),
                io.Int.Input("crop_size", default=512, min=64, max=2048, step=64,
                             tooltip="512 for the face DDPM"),
                io.Combo.Input("selection", options=["largest", "all", "index"], default="largest",
                               tooltip="which faces of each photo: the largest, all (largest first), or the one "
                                       "at index"),
                io.Int.Input("index", default=0, min=0, max=1000,
                             tooltip="with selection 'index': which face, counted from the largest"),
                io.Float.Input("min_eye_distance", default=10.0, min=0.0, max=4096.0, step=1.0,
                               tooltip="skip faces whose eyes are closer than this many pixels"),
                io.Float.Input("confidence", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="the lowest detection score kept, on the detector's own scale; 0: the "
                                       "detector's own (RetinaFace 0.97, MTCNN 0.70)"),
                io.Mask.Input("mask", optional=True,
                              tooltip="a mask of the photo (e.g. scratches) to crop alongside the faces"),
                io.Combo.Input("no_face", options=list(NO_FACE), default="pass_through", optional=True,
                               tooltip="a photo without a usable face: pass_through (the whole photo goes on and "
                                       "Face Paste leaves it unchanged) or refuse (an error naming the photo: "
                                       "for reference_faces, which must all be faces)"),
            ],
            outputs=[io.Image.Output(display_name="faces"), io.Mask.Output(display_name="masks"),
                     FaceInfoType.Output(display_name="face_info")],
        )

    @classmethod
    def validate_inputs(cls, no_face: str | None = None) -> bool | str:
        """ComfyUI checks no optional combo's value: an unknown choice is refused here, before the run."""
        if no_face is None or no_face in NO_FACE:
            return True
        return f"no_face must be one of {', '.join(NO_FACE)}, got '{no_face}'"

    @classmethod
    @checked_inputs
    def execute(cls, detector, image: torch.Tensor, crop_size: int, selection: str, index: int,
                min_eye_distance: float, confidence: float, mask: torch.Tensor | None = None,
                no_face: NoFace = "pass_through") -> io.NodeOutput:
        photos = boundary.image_to_rgb(image)
        network = getattr(detector, "network", None)  # (a detector of another make may have none)
        if network is not None:
            managed.load(network, DETECTOR_WORKING_BYTES)
        faces, masks, info = crop_faces(detector, photos, crop_size, selection, index, min_eye_distance,
                                        confidence or None, mask, device.check_interrupt, no_face)
        return io.NodeOutput(boundary.channels_last(faces), masks, info)


class SSDiffFaceRecrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceRecrop",
            display_name="SSDiff Face Crop (same faces)",
            category="SSDiff/faces",
            description=("Crops the faces an SSDiff Face Crop found again, from another version of the same photos "
                         "(colourised, repaired, or scaled by any factor), aligned exactly as the first crops: e.g. "
                         "the face of the colourised photo as SSDiff Sampler's colour_reference, so that the face "
                         "and the photo agree. Nothing is detected again."),
            inputs=[io.Image.Input("image", tooltip="the other version of the photos Face Crop saw, same order"),
                    FaceInfoType.Input("face_info", tooltip="the face_info output of that SSDiff Face Crop")],
            outputs=[io.Image.Output(display_name="faces")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image: torch.Tensor, face_info) -> io.NodeOutput:
        return io.NodeOutput(boundary.channels_last(recrop_faces(boundary.image_to_rgb(image), face_info)))


class SSDiffFacePaste(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFacePaste",
            display_name="SSDiff Face Paste",
            category="SSDiff/faces",
            description=("Pastes restored faces back into their photos with a feathered mask; only the pasted "
                         "regions change and an alpha channel is kept. tone: 'photo' gives each face the photo's "
                         "tone (its lightness and detail from the restoration, its colour statistics, CIELAB "
                         "a* and b* mean and spread, from the photo under the face's crop), so a sepia photo "
                         "gets a sepia face and a grayscale one a gray face; 'restored' pastes the restored "
                         "colour; 'auto' takes the photo's tone when the photo is monochrome or tinted: when its "
                         "colours keep to one hue, the (a*, b*) of its pixels of mid lightness lying within "
                         f"{MONOCHROME_SPREAD:g} CIELAB units (root mean square) of one line through neutral gray "
                         "(measured: grayscale 0, sepia 1.0, the pack's aged sample 1.6, colour photographs "
                         "3.6 and more)."),
            inputs=[io.Image.Input("image", tooltip="the photos given to SSDiff Face Crop"),
                    io.Image.Input("faces", tooltip="the restored crops, in FaceCrop's order"),
                    FaceInfoType.Input("face_info", tooltip="the face_info output of the same SSDiff Face Crop"),
                    io.Combo.Input("tone", options=list(TONES), default="auto", optional=True,
                                   tooltip="auto: the photo's tone in a monochrome or tinted photo, the restored "
                                           "colour in a colour photo; photo: always the photo's tone; restored: "
                                           "always the restored colour")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def validate_inputs(cls, tone: str | None = None) -> bool | str:
        """ComfyUI checks no optional combo's value: an unknown tone is refused here, before the run."""
        if tone is None or tone in TONES:
            return True
        return f"tone must be one of {', '.join(TONES)}, got '{tone}'"

    @classmethod
    @checked_inputs
    def execute(cls, image: torch.Tensor, faces: torch.Tensor, face_info, tone: Tone = "auto") -> io.NodeOutput:
        pasted = paste_faces(boundary.channels_first(image), boundary.channels_first(faces), face_info, tone)
        return io.NodeOutput(boundary.channels_last(pasted))
