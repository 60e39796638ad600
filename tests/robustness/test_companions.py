"""Inputs that must agree with each other and do not: batches of companions of an image, and
Face Paste given another photo or Face Crop an index beyond the faces it found. Each refused
naming both sides."""
from __future__ import annotations

import json

import pytest

from node_prompts import UNDER_TEST, node_prompt
from robustness_support import assert_still_serves, execution_error, load_image, random_rgb, write_image
from test_whole_photo_faces import detection_row, smooth_photo


def repeated(image: list, amount: int) -> dict:
    return {"class_type": "RepeatImageBatch", "inputs": {"image": image, "amount": amount}}


def test_a_parsing_batch_that_does_not_match_the_images_is_named_as_the_parsing(server):
    prompt = node_prompt(server, "SSDiffSampler")
    prompt["two"], prompt["three"] = repeated(["photo", 0], 2), repeated(["photo", 0], 3)
    prompt["three_black"] = repeated(["black", 0], 3)
    prompt["parse"]["inputs"]["label_map"] = ["three_black", 0]
    prompt[UNDER_TEST]["inputs"]["image"] = ["two", 0]
    text = execution_error(server, prompt)
    assert "parsing has a batch of 3, image a batch of 2: give one per image or a single one for all" in text
    assert_still_serves(server)


@pytest.mark.parametrize("companion", ["style", "region"])
def test_colour_transfer_companions_of_another_batch_are_refused(server, companion):
    prompt = node_prompt(server, "SSDiffColourTransfer")
    prompt["two"], prompt["three"] = repeated(["photo", 0], 2), repeated(["photo", 0], 3)
    prompt["two_masks"] = {"class_type": "ImageToMask", "inputs": {"image": ["two", 0], "channel": "red"}}
    prompt[UNDER_TEST]["inputs"].update(content=["three", 0],
                                        **{companion: ["two" if companion == "style" else "two_masks", 0]})
    text = execution_error(server, prompt)
    assert f"{companion} has a batch of 2, content a batch of 3" in text
    assert_still_serves(server)


def two_face_crop(server, photo: str, selection: str = "all", index: int = 0) -> dict:
    rows = [detection_row((120.0, 150.0), 40.0), detection_row((450.0, 140.0), 30.0)]
    return {"detector": {"class_type": "RobustnessProbeFaceDetector", "inputs": {"detections": json.dumps(rows)}},
            "photo": load_image(photo),
            "crop": {"class_type": "SSDiffFaceCrop",
                     "inputs": {"detector": ["detector", 0], "image": ["photo", 0], "crop_size": 64,
                                "selection": selection, "index": index, "min_eye_distance": 10.0,
                                "confidence": 0.97}}}


def test_face_paste_into_a_photo_of_another_size_than_face_crop_saw_is_refused(server):
    prompt = two_face_crop(server, write_image(server, smooth_photo(300, 600, seed=81)))
    prompt["other"] = load_image(write_image(server, random_rgb(600, 300, seed=82)))
    prompt["paste"] = {"class_type": "SSDiffFacePaste",
                       "inputs": {"image": ["other", 0], "faces": ["crop", 0], "face_info": ["crop", 2]}}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["paste", 0]}}
    text = execution_error(server, prompt)
    assert "photo 0 is 300x600, but FaceCrop cropped its faces from a 600x300 photo" in text, text
    assert_still_serves(server)


def test_face_crop_index_beyond_the_faces_found_names_the_index_and_the_count(server):
    prompt = two_face_crop(server, write_image(server, smooth_photo(300, 600, seed=83)), "index", 2)
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["crop", 0]}}
    text = execution_error(server, prompt)
    assert "FaceCrop index 2 asks for face 3 (counted from the largest), but photo 0 has 2 usable face(s): " \
           "choose an index from 0 to 1" in text, text
    assert_still_serves(server)
