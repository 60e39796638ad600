"""SSDiff Global Restoration's own refusals through the server: a mask where the quality mapping
takes none, no mask where a scratch mapping needs one, and a decoder trained for another mapping."""
from __future__ import annotations

from node_prompts import UNDER_TEST, node_prompt
from robustness_support import assert_still_serves, execution_error, refused

QUALITY = {"mapping": "restoration/mapping_quality/latest_net_mapping_net.pth",
           "decoder": "restoration/VAE_B_quality/latest_net_G.pth"}


def test_the_mapping_decides_whether_a_mask_is_taken(server):
    prompt = node_prompt(server, "SSDiffGlobalRestoration")
    prompt["global_restoration"]["inputs"].update(QUALITY)
    text = execution_error(server, prompt)
    assert "mask: the quality mapping takes no mask; disconnect it, or load a scratch mapping" in text, text
    prompt = node_prompt(server, "SSDiffGlobalRestoration")
    prompt[UNDER_TEST]["inputs"].pop("mask")
    text = execution_error(server, prompt)
    assert "mask: the scratch mapping repaints the damage a mask marks; connect one" in text, text
    assert_still_serves(server)


def test_a_decoder_of_another_mapping_is_refused_before_the_run(server):
    prompt = node_prompt(server, "SSDiffGlobalRestoration")
    prompt["global_restoration"]["inputs"]["decoder"] = QUALITY["decoder"]
    text = refused(server, prompt)
    assert "does not go with mapping 'restoration/mapping_scratch/latest_net_mapping_net.pth': BOPBTL decodes " \
           "mapping_scratch with VAE_B_scratch" in text, text
    assert_still_serves(server)


def test_a_precision_the_network_does_not_support_is_refused_before_the_run(server):
    prompt = node_prompt(server, "SSDiffGlobalRestoration")
    prompt["global_restoration"]["inputs"]["precision"] = "fp16"
    text = refused(server, prompt)
    assert "precision fp16: BOPBTL's global restoration runs in fp32 or bf16 only (in fp16 the non-local " \
           "attention's weights underflow to zero rows" in text, text
    assert_still_serves(server)
