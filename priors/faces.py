"""Whole photos: find, align and crop faces; paste restored faces back. Photos and faces are
B x C x H x W in [0, 1], checked for invalid values at the node boundary."""
from __future__ import annotations

import logging
from typing import Callable, Literal

import cv2
import numpy as np
import torch

from .alignment import (AlignedFace, FaceInfo, FaceSelection, alignment_affine, letterbox, paste_face,
                        select_faces, warp_face)
from .arrays import image_array, image_tensor, mask_array, mask_tensor
from .face_detection import FaceDetector, detect_faces
from .tone import Tone, in_photo_tone, uses_photo_tone


NoFace = Literal["pass_through", "refuse"]
NO_FACE: tuple[NoFace, ...] = ("pass_through", "refuse")


def crop_faces(detector: FaceDetector, photos: torch.Tensor, crop_size: int = 512,
               selection: FaceSelection = "largest", index: int = 0, min_eye_distance: float = 0.0,
               confidence: float | None = None,
               masks: torch.Tensor | None = None,
               check_interrupt: Callable[[], None] | None = None,
               no_face: NoFace = "pass_through") -> tuple[torch.Tensor, torch.Tensor, FaceInfo]:
    """RGB photos B x 3 x H x W -> (faces N x 3 x S x S, their masks N x S x S, FaceInfo). A photo
    without a usable face contributes nothing; when no photo has one, the photos themselves are
    returned, letterboxed to S x S, with an empty FaceInfo (FacePaste then leaves them unchanged).
    `no_face` "refuse": a photo without a usable face is an error naming it instead.
    `confidence` None: the detector's own."""
    if masks is not None:
        if masks.ndim == 2:
            masks = masks[None]
        if masks.shape[0] not in (1, photos.shape[0]):
            raise ValueError(f"FaceCrop got {masks.shape[0]} masks for {photos.shape[0]} photos: give one mask per "
                             "photo or a single one for all")
    crops, mask_crops, aligned, rgb_photos = [], [], [], []
    for image_index, photo in enumerate(photos):
        if check_interrupt is not None:
            check_interrupt()
        rgb = image_array(photo)
        rgb_photos.append(rgb)
        mask = None if masks is None else mask_array(masks[min(image_index, masks.shape[0] - 1)])
        if mask is not None and mask.shape != rgb.shape[:2]:
            logging.warning("SSDiff FaceCrop: mask %s resized to the photo's %s", mask.shape, rgb.shape[:2])
            mask = cv2.resize(mask, rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        detected = detect_faces(detector, rgb, confidence)
        too_small = [face for face in detected if face.eye_distance < min_eye_distance]
        if too_small:
            logging.warning("SSDiff FaceCrop: photo %d: skipped %d face(s) with eyes %s px apart, closer than "
                            "min_eye_distance %s", image_index, len(too_small),
                            ", ".join(f"{face.eye_distance:.1f}" for face in too_small), min_eye_distance)
        faces = select_faces(detected, selection, index, min_eye_distance)
        usable = len(detected) - len(too_small)
        if selection == "index" and not faces and usable:
            raise ValueError(f"FaceCrop index {index} asks for face {index + 1} (counted from the largest), but "
                             f"photo {image_index} has {usable} usable face(s): choose an index from 0 to "
                             f"{usable - 1}")
        if no_face == "refuse" and not faces:
            raise ValueError(f"FaceCrop found no usable face in photo {image_index} ({len(detected)} detected, "
                             f"{len(too_small)} with eyes closer than min_eye_distance {min_eye_distance}) and "
                             "no_face is 'refuse': remove that photo, lower confidence or min_eye_distance, or "
                             "set no_face to pass_through")
        for face in faces:
            affine = alignment_affine(face.landmarks, crop_size)
            crops.append(warp_face(rgb, affine, crop_size))
            mask_crops.append(np.zeros((crop_size, crop_size), np.float32) if mask is None else
                              cv2.warpAffine(mask, affine, (crop_size, crop_size), flags=cv2.INTER_LINEAR))
            aligned.append(AlignedFace(image_index, affine, face))
    info = FaceInfo(crop_size, tuple(rgb.shape[:2] for rgb in rgb_photos), tuple(aligned))
    if not aligned:
        logging.warning("SSDiff FaceCrop: no face found (confidence >= %s, eyes >= %s px apart); the "
                        "photos pass through unchanged", detector.default_confidence if confidence is None else confidence,
                        min_eye_distance)
        crops = [letterbox(rgb, crop_size) for rgb in rgb_photos]
        mask_crops = [np.zeros((crop_size, crop_size), np.float32) for _ in photos]
    return image_tensor(np.stack(crops)).clamp(0, 1), mask_tensor(np.stack(mask_crops)).clamp(0, 1), info


def recrop_faces(photos: torch.Tensor, info: FaceInfo) -> torch.Tensor:
    """The faces Face Crop found (`info`), cropped again from another version of the same photos
    (RGB B x 3 x H x W: colourised, repaired, or scaled as photo_scale allows): N x 3 x S x S, aligned as
    the first crops, so that they match pixel for pixel. With no face in `info`, the photos
    letterboxed, as Face Crop gives them."""
    if photos.shape[0] != len(info.image_sizes):
        raise ValueError(f"Face Crop (same faces) got {photos.shape[0]} photos, but the Face Crop that made face_info "
                         f"saw {len(info.image_sizes)}: connect the same photos, in the same order")
    rgb = [image_array(photo) for photo in photos]
    if not info.faces:
        crops = [letterbox(array, info.crop_size) for array in rgb]
    else:
        crops = [warp_face(rgb[face.image_index], scaled_affine(face.affine, photo_scale(
                     tuple(photos.shape[-2:]), info.image_sizes[face.image_index], face.image_index)), info.crop_size)
                 for face in info.faces]
    return image_tensor(np.stack(crops)).clamp(0, 1)


def photo_scale(size: tuple[int, int], cropped: tuple[int, int], image_index: int) -> tuple[float, float]:
    """(x, y) scale of a photo of `size` (H, W) against the one Face Crop saw (`cropped`): the same
    photo upscaled or downscaled (any factor, its sides rounded to whole pixels) is accepted, a photo
    of another shape is refused."""
    (height, width), (cropped_height, cropped_width) = size, cropped
    scale_x, scale_y = width / cropped_width, height / cropped_height
    if abs(width - cropped_width * scale_y) > 1 and abs(height - cropped_height * scale_x) > 1:
        raise ValueError(f"FacePaste: photo {image_index} is {width}x{height}, but FaceCrop cropped its faces from a "
                         f"{cropped_width}x{cropped_height} photo, of another shape: connect the photo that went into "
                         "that FaceCrop, or that photo scaled (e.g. by Upscale Image (using Model)); in another "
                         "shape the faces would land in the wrong place")
    return scale_x, scale_y


def scaled_affine(affine: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """The photo -> crop affine of Face Crop for the photo scaled by `scale` (x, y), pixel centres
    kept where resizing puts them (x' + 0.5 = s (x + 0.5))."""
    if scale == (1.0, 1.0):
        return affine
    scale_x, scale_y = scale
    linear = affine[:, :2] / np.array([scale_x, scale_y], dtype=affine.dtype)
    shift = affine[:, 2] + affine[:, :2] @ np.array([0.5 / scale_x - 0.5, 0.5 / scale_y - 0.5], dtype=affine.dtype)
    return np.concatenate([linear, shift[:, None]], axis=1)


def paste_faces(photos: torch.Tensor, faces: torch.Tensor, info: FaceInfo, tone: Tone = "restored") -> torch.Tensor:
    """Blends each restored face (N x 3 x S x S) back into its photo (B x C x H x W), which may be
    the photo Face Crop saw or that photo scaled (photo_scale); channels beyond RGB (alpha) are kept, a grayscale photo takes the face's mean. `tone` (priors/tone.py):
    'restored' pastes the faces as they are; 'photo' gives each face the colour statistics of its
    photo under the crop, keeping its lightness; 'auto' does so in monochrome or tinted photos."""
    if not info.faces:
        logging.warning("SSDiff FacePaste: no face was cropped; the photos pass through unchanged")
        return photos.clone()
    if faces.shape[0] != len(info.faces):
        raise ValueError(f"FacePaste got {faces.shape[0]} faces for {len(info.faces)} crops in face_info: "
                         "connect the faces that came from the same FaceCrop, in order")
    if photos.shape[0] != len(info.image_sizes):
        raise ValueError(f"FacePaste got {photos.shape[0]} photos, FaceCrop saw {len(info.image_sizes)}")
    scales = [photo_scale(tuple(photo.shape[-2:]), size, image_index)
              for image_index, (photo, size) in enumerate(zip(photos, info.image_sizes))]
    pasted = [image_array(photo) for photo in photos]
    originals = list(pasted)  # paste_face returns a new photo: these stay as they came in
    toned: dict[int, bool] = {}
    for crop, entry in zip(faces, info.faces):
        affine = scaled_affine(entry.affine, scales[entry.image_index])
        face = image_array(crop[:3])
        original = originals[entry.image_index]
        if original.shape[-1] == 1:
            face = face.mean(axis=-1, keepdims=True)
        if face.shape[:2] != (info.crop_size, info.crop_size):
            face = cv2.resize(face, (info.crop_size, info.crop_size), interpolation=cv2.INTER_LINEAR)
        if original.shape[-1] >= 3 and tone != "restored":
            if entry.image_index not in toned:
                toned[entry.image_index] = uses_photo_tone(tone, original[..., :3])
            if toned[entry.image_index]:
                face = in_photo_tone(face, original, affine)
        pasted[entry.image_index] = paste_face(pasted[entry.image_index], face, affine)
    return image_tensor(np.stack(pasted)).clamp(0, 1).to(photos.dtype)
