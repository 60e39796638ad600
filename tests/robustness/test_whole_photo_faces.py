"""Whole photos with several faces, a face too small to restore, and crops that do not belong to
the face_info they are pasted with, through the real server. Faces are put at known places by
RobustnessProbeFaceDetector (tests/host_probes), which answers in RetinaFace's row format; crop,
selection, alignment, sampling and paste-back are the pack's own."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from robustness_support import (assert_still_serves, ddpm_loader, execution_error, load_image, output_arrays,
                                pseudo_reference, refused, save, write_image)
from comfyui_ssdiff.priors.alignment import FFHQ_TEMPLATE_512

TEMPLATE_EYE_DISTANCE = float(np.linalg.norm(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0]))


def detection_row(centre: tuple[float, float], eye_distance: float) -> list[float]:
    """A RetinaFace row (box, score, five landmarks) of an upright face with eyes this far apart."""
    scale = eye_distance / TEMPLATE_EYE_DISTANCE
    landmarks = (FFHQ_TEMPLATE_512 - 256) * scale + np.asarray(centre, np.float32)
    half = 256 * scale
    return [centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half, 0.99,
            *landmarks.reshape(-1).tolist()]


def smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """Low-frequency colour, so that a pasted face shows against an unchanged background."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))


def crop_and_paste_prompt(photo_name: str, rows: list[list[float]], min_eye_distance: float = 10.0,
                          paste_faces: list | None = None) -> dict:
    """Scripted detector -> Face Crop (all, 64 px) -> Pseudo Reference on the crops -> Face Paste."""
    return {"1": {"class_type": "RobustnessProbeFaceDetector", "inputs": {"detections": json.dumps(rows)}},
            "2": load_image(photo_name),
            "3": {"class_type": "SSDiffFaceCrop",
                  "inputs": {"detector": ["1", 0], "image": ["2", 0], "crop_size": 64, "selection": "all",
                             "index": 0, "min_eye_distance": min_eye_distance, "confidence": 0.97}},
            "4": ddpm_loader(),
            "5": pseudo_reference(["4", 0], ["3", 0], seed=61, steps=2),
            "6": {"class_type": "SSDiffFacePaste",
                  "inputs": {"image": ["2", 0], "faces": paste_faces or ["5", 0], "face_info": ["3", 2]}},
            "7": save(["6", 0], "faces")}


def changed_near(before: np.ndarray, after: np.ndarray, centre: tuple[float, float], radius: int) -> float:
    x, y = int(centre[0]), int(centre[1])
    window = (slice(y - radius, y + radius), slice(x - radius, x + radius))
    return float(np.abs(after[window].astype(np.int16) - before[window].astype(np.int16)).mean())


def test_several_faces_are_each_restored_and_pasted_back_in_place(server):
    photo = smooth_photo(300, 600, seed=62)
    centres = [(120.0, 150.0), (450.0, 140.0)]
    rows = [detection_row(centres[0], 40.0), detection_row(centres[1], 30.0)]
    entry = server.run(crop_and_paste_prompt(write_image(server, photo), rows), timeout=180)
    result, = output_arrays(server, entry)
    assert result.shape == photo.shape
    for centre in centres:
        assert changed_near(photo, result, centre, 10) > 2.0, f"the face at {centre} was not pasted back"
    outside_the_crops = np.ones(photo.shape[:2], bool)
    for x1, y1, x2, y2 in (row[:4] for row in rows):  # the aligned crop's square: the paste stays inside it
        outside_the_crops[max(int(y1) - 2, 0):int(y2) + 2, max(int(x1) - 2, 0):int(x2) + 2] = False
    assert outside_the_crops.mean() > 0.4
    assert np.array_equal(result[outside_the_crops], photo[outside_the_crops])
    assert_still_serves(server)


def test_a_face_too_small_is_skipped_with_a_warning_and_left_unchanged(server):
    photo = smooth_photo(240, 360, seed=63)
    large, small = (110.0, 120.0), (290.0, 60.0)
    rows = [detection_row(large, 60.0), detection_row(small, 6.0)]
    before = server.log_text().count("skipped 1 face(s) with eyes 6.0 px apart, closer than min_eye_distance 10.0")
    result, = output_arrays(server, server.run(crop_and_paste_prompt(write_image(server, photo), rows), timeout=180))
    assert server.log_text().count(
        "skipped 1 face(s) with eyes 6.0 px apart, closer than min_eye_distance 10.0") == before + 1
    assert changed_near(photo, result, large, 10) > 2.0
    assert changed_near(photo, result, small, 6) == 0.0
    assert_still_serves(server)


def test_only_too_small_faces_pass_the_photo_through(server):
    photo = smooth_photo(120, 160, seed=64)
    result, = output_arrays(server, server.run(
        crop_and_paste_prompt(write_image(server, photo), [detection_row((80.0, 60.0), 6.0)]), timeout=180))
    assert np.array_equal(result, photo)
    assert_still_serves(server)


def test_faces_batch_that_does_not_match_face_info_is_refused(server):
    photo = smooth_photo(240, 360, seed=65)
    rows = [detection_row((100.0, 110.0), 60.0), detection_row((260.0, 130.0), 45.0)]
    prompt = crop_and_paste_prompt(write_image(server, photo), rows, paste_faces=["8", 0])
    prompt["8"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["5", 0], "batch_index": 0, "length": 1}}
    text = execution_error(server, prompt)
    assert "FacePaste got 1 faces for 2 crops in face_info" in text and "same FaceCrop" in text
    assert_still_serves(server)


def test_mask_batch_that_does_not_match_the_photos_is_refused_by_face_crop(server):
    photo = smooth_photo(120, 160, seed=66)
    prompt = crop_and_paste_prompt(write_image(server, photo), [detection_row((80.0, 60.0), 40.0)])
    prompt["8"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 160, "height": 120}}
    prompt["9"] = {"class_type": "MaskToImage", "inputs": {"mask": ["8", 0]}}
    prompt["10"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["9", 0], "amount": 2}}
    prompt["11"] = {"class_type": "ImageToMask", "inputs": {"image": ["10", 0], "channel": "red"}}
    prompt["3"]["inputs"]["mask"] = ["11", 0]
    text = execution_error(server, prompt)
    assert "FaceCrop got 2 masks for 1 photos" in text
    assert_still_serves(server)


def test_a_face_pasted_into_a_sepia_photo_takes_the_photos_tone_and_an_unknown_tone_is_refused(server):
    """tone 'photo' (and 'auto', which finds the photo tinted) gives the restored face the sepia
    photo's colour; 'restored' keeps the restoration's colour; a tone not offered is refused."""
    from comfyui_ssdiff.priors.tone import hue_spread

    grey = smooth_photo(200, 300, seed=67).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    sepia_matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    photo = (np.repeat(grey[..., None], 3, -1) @ sepia_matrix.T).clip(0, 255).round().astype(np.uint8)
    centre = (150.0, 100.0)
    name = write_image(server, photo)
    window = (slice(90, 110), slice(140, 160))
    faces = {}
    for tone in ("restored", "photo", "auto"):
        prompt = crop_and_paste_prompt(name, [detection_row(centre, 40.0)])
        prompt["6"]["inputs"]["tone"] = tone
        faces[tone], = output_arrays(server, server.run(prompt, timeout=180))
    assert changed_near(photo, faces["photo"], centre, 10) > 1.0, "the face was pasted"
    spreads = {tone: hue_spread(image[window].astype(np.float32) / 255) for tone, image in faces.items()}
    assert spreads["photo"] < 2.5 < spreads["restored"], spreads
    assert np.array_equal(faces["auto"], faces["photo"])
    prompt = crop_and_paste_prompt(name, [detection_row(centre, 40.0)])
    prompt["6"]["inputs"]["tone"] = "sepia"
    text = refused(server, prompt)
    assert "tone" in text and "sepia" in text
    assert_still_serves(server)
