"""Empty batches (0 images, 0 masks, 0 parsings), as a filter node that matched nothing gives,
into every input of every node that reads one: one clear error naming the input."""
from __future__ import annotations

from node_prompts import UNDER_TEST, node_prompt, tensor_inputs
from robustness_support import assert_still_serves, execution_error

NOUNS = {"image": "images", "mask": "masks", "parsing": "parsings"}


def test_an_empty_batch_into_any_input_is_refused_naming_it(server):
    checked, problems = 0, []
    for kind, noun in NOUNS.items():
        for node, name in tensor_inputs(kind):
            prompt = node_prompt(server, node)
            prompt["empty"] = {"class_type": "RobustnessProbeEmptyBatch",
                               "inputs": {"value": prompt[UNDER_TEST]["inputs"][name]}}
            prompt[UNDER_TEST]["inputs"][name] = ["empty", 0]
            text = execution_error(server, prompt)
            checked += 1
            if f"{name} is an empty batch (0 {noun})" not in text:
                problems.append(f"{node}.{name}: {text[:300]}")
    assert checked >= 30 and not problems, "\n".join(problems)
    assert_still_serves(server)
