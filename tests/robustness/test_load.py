"""Twenty prompts queued at once on the real server: all complete with their outputs, and the
server's memory does not keep growing."""
from __future__ import annotations

import psutil

from robustness_support import (assert_still_serves, both_stages_prompt, output_arrays, random_rgb, write_image)

PROMPTS = 20
RSS_GROWTH_BOUND = 300 * 2**20
"""Allowed growth of the server's resident memory from after the 2nd prompt to after the 20th."""


def test_twenty_queued_prompts_complete_within_a_memory_bound(server):
    image = write_image(server, random_rgb(48, 40, seed=77), name="robust_load.png")
    prompt_ids = []
    for index in range(PROMPTS):
        prompt = both_stages_prompt(image, seed=500 + index)  # distinct seeds: nothing answered from cache
        prompt["7"]["inputs"]["filename_prefix"] = f"load_{index:02d}"
        response = server.queue(prompt)
        assert response.status_code == 200, response.text[:500]
        prompt_ids.append(response.json()["prompt_id"])
    process = psutil.Process(server.process.pid)
    rss = {}
    outputs = []
    for index, prompt_id in enumerate(prompt_ids, start=1):
        arrays = output_arrays(server, server.wait_for(prompt_id, timeout=300))
        assert len(arrays) == 1 and arrays[0].shape == (48, 40, 3), f"prompt {index}"
        outputs.append(arrays[0])
        rss[index] = process.memory_info().rss
    assert len({array.tobytes() for array in outputs}) == PROMPTS, "distinct seeds gave identical images"
    growth = rss[PROMPTS] - rss[2]
    print(f"server RSS after prompt 2: {rss[2] / 2**20:.0f} MiB, after prompt {PROMPTS}: {rss[PROMPTS] / 2**20:.0f} MiB")
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.0f} MiB from prompt 2 to prompt {PROMPTS}"
    assert_still_serves(server)
