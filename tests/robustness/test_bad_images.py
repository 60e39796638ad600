"""Unusual images through LoadImage and the real server's /prompt: each runs (or is refused with a
message naming the problem) and the server keeps serving."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from robustness_support import (DETECTOR, SCRATCH, assert_still_serves, both_stages_prompt, execution_error,
                                load_image, output_arrays, random_rgb, save, stage1_prompt, write_image)


def run_both_stages(server, file_name: str) -> np.ndarray:
    arrays = output_arrays(server, server.run(both_stages_prompt(file_name), timeout=120))
    assert len(arrays) == 1
    return arrays[0]


def test_odd_size_comes_back_at_its_own_size(server):
    output = run_both_stages(server, write_image(server, random_rgb(29, 37)))
    assert output.shape == (29, 37, 3)
    assert_still_serves(server)


def test_tiny_8x8_image_runs(server):
    output = run_both_stages(server, write_image(server, random_rgb(8, 8)))
    assert output.shape == (8, 8, 3)
    assert_still_serves(server)


def test_grayscale_png_runs_as_rgb(server):
    gray = random_rgb(32, 32)[..., 0]
    output = run_both_stages(server, write_image(server, gray, "L"))
    assert output.shape == (32, 32, 3)
    assert_still_serves(server)


def test_rgba_png_runs_with_alpha_dropped(server):
    rgba = np.concatenate([random_rgb(32, 32), np.full((32, 32, 1), 128, np.uint8)], axis=-1)
    output = run_both_stages(server, write_image(server, rgba, "RGBA"))
    assert output.shape == (32, 32, 3)
    assert_still_serves(server)


def test_16_bit_png_runs(server):
    deep = (np.random.default_rng(3).integers(0, 65536, (32, 32))).astype(np.uint16)
    name = write_image(server, deep)
    with Image.open(server.input_dir / name) as written:
        assert written.mode == "I;16"
    output = run_both_stages(server, name)
    assert output.shape == (32, 32, 3)
    assert_still_serves(server)


def test_batch_of_two_gives_two_images(server):
    prompt = stage1_prompt(write_image(server, random_rgb(32, 32, seed=1)))
    prompt["5"] = load_image(write_image(server, random_rgb(32, 32, seed=2)))
    prompt["6"] = {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["5", 0]}}
    prompt["3"]["inputs"]["image"] = ["6", 0]
    arrays = output_arrays(server, server.run(prompt, timeout=120))
    assert len(arrays) == 2 and all(array.shape == (32, 32, 3) for array in arrays)
    assert not np.array_equal(arrays[0], arrays[1])  # item i is sampled with seed + i
    assert_still_serves(server)


@pytest.mark.parametrize("value", [0, 255], ids=["all_black", "all_white"])
def test_flat_image_runs(server, value):
    output = run_both_stages(server, write_image(server, np.full((32, 32, 3), value, np.uint8)))
    assert output.shape == (32, 32, 3)
    assert_still_serves(server)


def test_large_photo_without_a_face_gets_a_full_size_scratch_mask_and_passes_through_crop_and_paste(server):
    photo = np.random.default_rng(5).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    name = write_image(server, photo)
    prompt = {"1": {"class_type": "SSDiffFaceDetectorLoader", "inputs": {"model_name": DETECTOR}},
              "2": load_image(name),
              "6": {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": SCRATCH}},
              "7": {"class_type": "SSDiffScratchMask",
                    "inputs": {"detector": ["6", 0], "image": ["2", 0], "threshold": 0.4, "dilation": 1,
                               "resize_mode": "full_size"}},
              "8": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
              "9": save(["8", 0], "large_photo_scratches"),
              "3": {"class_type": "SSDiffFaceCrop",
                    "inputs": {"detector": ["1", 0], "image": ["2", 0], "crop_size": 64, "selection": "largest",
                               "index": 0, "min_eye_distance": 10.0, "confidence": 1.0, "mask": ["7", 0]}},
              "4": {"class_type": "SSDiffFacePaste", "inputs": {"image": ["2", 0], "faces": ["3", 0],
                                                                "face_info": ["3", 2]}},
              "5": save(["4", 0], "large_photo_pasted")}
    outputs = {}
    for path in server.output_images(server.run(prompt, timeout=300)):
        with Image.open(path) as image:
            outputs[path.name.split("_0")[0]] = np.asarray(image)
    restored, scratches = outputs["large_photo_pasted"], outputs["large_photo_scratches"]
    assert restored.shape == scratches.shape == (2000, 3000, 3)
    assert set(np.unique(scratches)) <= {0, 255}
    assert np.abs(restored.astype(np.int16) - photo.astype(np.int16)).max() <= 1
    assert "no face found" in server.log_text()
    assert_still_serves(server)


def spoiled(image: list, value: str, count: int = 5) -> dict:
    """RobustnessProbeNonFinite (tests/host_probes): `count` values of the image set to `value`."""
    return {"class_type": "RobustnessProbeNonFinite", "inputs": {"image": image, "value": value, "count": count}}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_image_is_refused_by_the_sampler_naming_the_count(server, value):
    prompt = stage1_prompt(write_image(server, random_rgb(32, 32)), seed=51)
    prompt["8"] = spoiled(["2", 0], value)
    prompt["3"]["inputs"]["image"] = ["8", 0]
    text = execution_error(server, prompt)
    assert "image contains 5 NaN or infinite values (of 3072)" in text and "SSDiffPseudoReference" in text
    assert_still_serves(server)


def test_non_finite_image_is_refused_by_scratch_mask_and_face_crop(server):
    name = write_image(server, random_rgb(32, 32))
    scratch = {"1": {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": SCRATCH}},
               "2": load_image(name), "8": spoiled(["2", 0], "nan"),
               "3": {"class_type": "SSDiffScratchMask",
                     "inputs": {"detector": ["1", 0], "image": ["8", 0], "threshold": 0.4, "dilation": 0,
                                "resize_mode": "full_size"}},
               "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}}, "5": save(["4", 0])}
    assert "image contains 5 NaN or infinite values" in execution_error(server, scratch)
    crop = {"1": {"class_type": "SSDiffFaceDetectorLoader", "inputs": {"model_name": DETECTOR}},
            "2": load_image(name), "8": spoiled(["2", 0], "inf"),
            "3": {"class_type": "SSDiffFaceCrop",
                  "inputs": {"detector": ["1", 0], "image": ["8", 0], "crop_size": 64, "selection": "largest",
                             "index": 0, "min_eye_distance": 10.0, "confidence": 0.97}},
            "4": save(["3", 0])}
    assert "image contains 5 NaN or infinite values" in execution_error(server, crop)
    assert_still_serves(server)


def test_non_finite_image_is_refused_by_face_parse_and_coarse_restore(server):
    name = write_image(server, random_rgb(32, 32))
    parse = {"1": {"class_type": "SSDiffFaceParserLoader", "inputs": {"model_name": "resnet34.pt"}},
             "2": load_image(name), "8": spoiled(["2", 0], "nan"),
             "3": {"class_type": "SSDiffFaceParse",
                   "inputs": {"parser": ["1", 0], "image": ["8", 0], "regions": "face", "reference_compat": False}},
             "4": save(["3", 2])}
    assert "image contains 5 NaN or infinite values" in execution_error(server, parse)
    restore = {"1": {"class_type": "SSDiffFaceRestorerLoader", "inputs": {"model_name": "codeformer.pth"}},
               "2": load_image(name), "8": spoiled(["2", 0], "-inf"),
               "3": {"class_type": "SSDiffCoarseRestore",
                     "inputs": {"restorer": ["1", 0], "image": ["8", 0], "fidelity": 0.5}},
               "4": save(["3", 0])}
    assert "image contains 5 NaN or infinite values" in execution_error(server, restore)
    assert_still_serves(server)
