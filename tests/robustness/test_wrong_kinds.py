"""Values of the wrong kind through an any-type node (a MASK, a LATENT, an IMAGE where a MASK
belongs, a MASK where a parsing belongs) into every node that reads an IMAGE, MASK or parsing:
an error naming the input, what it expects and what it got."""
from __future__ import annotations

from node_prompts import UNDER_TEST, node_prompt, tensor_inputs
from robustness_support import assert_still_serves, execution_error

WRONG_KINDS = {
    "image": [("mask", "got a 3-D tensor of shape (1, 32, 32)", "a MASK? convert it with Convert Mask to Image"),
              ("latent", "got a dict with keys samples", "a LATENT: decode it with VAE Decode")],
    "mask": [("photo", "got a 4-D tensor of shape (1, 32, 32, 3)", "an IMAGE? convert it with Convert Image to Mask")],
    "parsing": [("mask", "got a 3-D tensor of shape (1, 32, 32) (float32)", "")],
}
EXPECTED = {"image": "expected an IMAGE (batch x height x width x channels", "mask": "expected a MASK",
            "parsing": "expected a face parsing"}


def test_a_value_of_the_wrong_kind_is_refused_naming_the_input_and_what_it_is(server):
    checked, problems = 0, []
    for kind, wrong_values in WRONG_KINDS.items():
        for node, name in tensor_inputs(kind):
            for source, got, hint in wrong_values:
                prompt = node_prompt(server, node)
                prompt["any"] = {"class_type": "RobustnessProbeAnyType", "inputs": {"value": [source, 0]}}
                prompt[UNDER_TEST]["inputs"][name] = ["any", 0]
                text = execution_error(server, prompt)
                checked += 1
                if not all(part in text for part in (f"{name}: {EXPECTED[kind]}", got, hint)):
                    problems.append(f"{node}.{name} <- {source}: {text[:300]}")
    assert checked >= 45 and not problems, "\n".join(problems)
    assert_still_serves(server)
