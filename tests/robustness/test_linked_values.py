"""Values that arrive through a link (Primitive nodes, an any-type reroute) instead of a widget:
ComfyUI checks neither their range nor, for inputs a node validates itself, their value before
the run, so every node checks them when it executes, with the widget check's own message."""
from __future__ import annotations

import pytest
import requests

from node_prompts import NODE_INPUTS, UNDER_TEST, node_prompt
from robustness_support import assert_still_serves, execution_error, refused


def primitive(value) -> dict:
    kind = {bool: "Boolean", int: "Int", float: "Float", str: "String"}[type(value)]
    return {"class_type": f"Primitive{kind}", "inputs": {"value": value}}


def linked(prompt: dict, node: str, name: str, value, through_any_type: bool = False) -> dict:
    """`prompt` with `node`'s input `name` wired from a Primitive node holding `value`."""
    prompt[f"{name}_value"] = primitive(value)
    source = [f"{name}_value", 0]
    if through_any_type:
        prompt[f"{name}_any"] = {"class_type": "RobustnessProbeAnyType", "inputs": {"value": source}}
        source = [f"{name}_any", 0]
    prompt[node]["inputs"][name] = source
    return prompt


def test_valid_linked_values_run(server):
    prompt = node_prompt(server, "SSDiffFaceParse")
    linked(prompt, UNDER_TEST, "regions", "face, hair")
    for node, name, value in (("SSDiffPseudoReference", "s_start", 0.9), ("SSDiffFaceCrop", "crop_size", 128)):
        prompt[node] = {"class_type": node, "inputs": dict(NODE_INPUTS[node])}
        linked(prompt, node, name, value)
        prompt[f"show_{node}"] = {"class_type": "PreviewAny", "inputs": {"source": [node, 0]}}
    entry = server.run(prompt, timeout=120)
    assert {"show", "show_SSDiffPseudoReference", "show_SSDiffFaceCrop"} <= set(entry["outputs"])
    assert_still_serves(server)


WIDGET_CHECKED = [
    ("SSDiffFaceParse", "regions", "nose, bogus", {}, False),
    ("SSDiffPseudoReference", "s_end", 0.95, {"s_start": 0.9}, False),
    ("SSDiffSelectiveSampler", "s_start", 0.5, {"s_end": 0.7}, False),
    ("SSDiffScratchDetectorLoader", "model_name", "../escape.pt", {}, True),
]


@pytest.mark.parametrize("node, name, value, others, through_any_type", WIDGET_CHECKED,
                         ids=[f"{node}-{name}" for node, name, *_ in WIDGET_CHECKED])
def test_a_linked_value_is_refused_with_the_widget_checks_message(server, node, name, value, others,
                                                                   through_any_type):
    if node == "SSDiffScratchDetectorLoader":
        prompt = {UNDER_TEST: {"class_type": node, "inputs": {"model_name": value}},
                  "show": {"class_type": "PreviewAny", "inputs": {"source": [UNDER_TEST, 0]}}}
    else:
        prompt = node_prompt(server, node, **{name: value}, **others)
    widget_refusal = refused(server, prompt)
    linked(prompt, UNDER_TEST, name, value, through_any_type)
    text = execution_error(server, prompt)
    reason = widget_refusal.split(f"{name} - ", 1)[1].split('"', 1)[0]
    assert reason and reason in text, (reason, text)
    assert_still_serves(server)


def numeric_inputs(server) -> list[tuple[str, str, str, dict]]:
    """(node, input, INT or FLOAT, its widget options) of every numeric input of the prompted nodes."""
    info = requests.get(f"{server.url}/object_info", timeout=30).json()
    found = []
    for node in NODE_INPUTS:
        declared = {**info[node]["input"]["required"], **info[node]["input"].get("optional", {})}
        for name, (kind, *options) in declared.items():
            if kind in ("INT", "FLOAT"):
                found.append((node, name, kind, options[0] if options else {}))
    return found


def test_every_numeric_input_linked_out_of_its_range_is_refused_naming_the_range(server):
    checked, problems = 0, []
    cases = [(node, name, kind, options, options["min"] - (1 if kind == "INT" else 0.5))
             for node, name, kind, options in numeric_inputs(server)]
    cases.append(("SSDiffFaceCrop", "crop_size", "INT", {"min": 64, "max": 2048}, 100000))
    for node, name, kind, options, value in cases:
        prompt = linked(node_prompt(server, node), UNDER_TEST, name, value)
        text = execution_error(server, prompt)
        checked += 1
        if f"{name} is {value}, outside its range {options['min']} to {options['max']}" not in text:
            problems.append(f"{node}.{name} = {value}: {text[:300]}")
    assert checked >= 30 and not problems, "\n".join(problems)
    assert_still_serves(server)
