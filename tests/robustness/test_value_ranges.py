"""Pixel and mask values outside 0..1: a 0..255 IMAGE or MASK (a node that forgot to divide) is
refused naming the range, a small overshoot is clamped with a warning, and NaN in painted strokes
is refused as in every other mask."""
from __future__ import annotations

import pytest

from node_prompts import UNDER_TEST, node_prompt
from robustness_support import assert_still_serves, execution_error


def scaled(prompt: dict, source: list, factor: float) -> list:
    prompt["scaled"] = {"class_type": "RobustnessProbeScale", "inputs": {"value": source, "factor": factor}}
    return ["scaled", 0]


@pytest.mark.parametrize("node, name, kind", [("SSDiffPseudoReference", "image", "IMAGE"),
                                              ("SSDiffFaceCrop", "image", "IMAGE"),
                                              ("SSDiffScratchMask", "add_mask", "MASK")])
def test_values_scaled_0_to_255_are_refused_naming_the_range(server, node, name, kind):
    prompt = node_prompt(server, node)
    prompt["ones"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}}
    source = ["photo", 0] if kind == "IMAGE" else ["ones", 0]
    prompt[UNDER_TEST]["inputs"][name] = scaled(prompt, source, 255.0)
    text = execution_error(server, prompt)
    assert f"{name} holds values from " in text and f"but {kind} values run from 0 to 1 (0..255: the node that " \
           "made it did not divide by 255)" in text, text
    assert_still_serves(server)


def test_a_small_overshoot_is_clamped_with_a_warning(server):
    prompt = node_prompt(server, "SSDiffPseudoReference", seed=91)
    prompt[UNDER_TEST]["inputs"]["image"] = scaled(prompt, ["photo", 0], 1.1)
    before = server.log_text().count("outside IMAGE's 0..1; clamping them")
    entry = server.run(prompt, timeout=120)
    assert "show" in entry["outputs"]
    assert server.log_text().count("outside IMAGE's 0..1; clamping them") > before
    assert_still_serves(server)


@pytest.mark.parametrize("name", ["add_mask", "erase_mask"])
def test_nan_in_painted_strokes_is_refused(server, name):
    prompt = node_prompt(server, "SSDiffScratchMask")
    prompt["spoiled"] = {"class_type": "RobustnessProbeNonFinite",
                         "inputs": {"image": ["mask", 0], "value": "nan", "count": 3}}
    prompt["spoiled_any"] = {"class_type": "RobustnessProbeAnyType", "inputs": {"value": ["spoiled", 0]}}
    prompt[UNDER_TEST]["inputs"][name] = ["spoiled_any", 0]
    text = execution_error(server, prompt)
    assert f"{name} contains 3 NaN or infinite values (of 1024)" in text, text
    assert_still_serves(server)
