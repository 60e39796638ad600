"""Schedule inputs out of range are refused at validation (HTTP 400, nothing runs) with the allowed
range in the message; the server keeps serving."""
from __future__ import annotations

import pytest

from robustness_support import (assert_still_serves, both_stages_prompt, random_rgb, refused, stage1_prompt,
                                write_image)

# (node, input, value, text the refusal must contain). Only the affected output is in the prompt,
# so ComfyUI refuses the whole prompt instead of running the rest.
CASES = [
    ("selective", "t1", 1.5, "1.5 bigger than max of 0.99"),
    ("selective", "t1", 0.0, "0.0 smaller than min of 0.01"),
    ("selective", "scale", -0.5, "-0.5 smaller than min of 0.0"),
    ("pseudo_reference", "scale", -0.001, "-0.001 smaller than min of 0.0"),
    ("selective", "structure_weight", -1.0, "-1.0 smaller than min of 0.0"),
    ("selective", "reference_weight", -100.0, "-100.0 smaller than min of 0.0"),
    ("selective", "colour_weight", -0.5, "-0.5 smaller than min of 0.0"),
    ("selective", "repeats", 0, "0 smaller than min of 1"),
    ("pseudo_reference", "repeats", 0, "0 smaller than min of 1"),
    ("selective", "s_end", 0.9, "need 0 <= s_end <= s_start <= 1"),
    ("pseudo_reference", "s_end", 0.9, "need 0 <= s_end <= s_start <= 1"),
    ("pseudo_reference", "s_start", 1.5, "need 0 <= s_end <= s_start <= 1"),
    ("selective", "steps", 0, "0 smaller than min of 1"),
    ("pseudo_reference", "steps", 0, "0 smaller than min of 1"),
]


@pytest.mark.parametrize("node, name, value, expected", CASES,
                         ids=[f"{node}-{name}={value}" for node, name, value, _ in CASES])
def test_out_of_range_schedule_is_refused_with_the_range(server, node, name, value, expected):
    image = write_image(server, random_rgb(32, 32), name="robust_schedule.png")
    if node == "selective":
        prompt = both_stages_prompt(image, with_scratch_mask=False)
        inputs = prompt["4"]["inputs"]
    else:
        prompt = stage1_prompt(image)
        inputs = prompt["3"]["inputs"]
    inputs[name] = value
    if name == "s_end":
        inputs["s_start"] = 0.5
    text = refused(server, prompt)
    assert expected in text and name in text, text[:1000]


def test_server_serves_after_the_refusals(server):
    assert_still_serves(server)
