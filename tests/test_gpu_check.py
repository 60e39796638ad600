"""bench/gpu_check.py, the GPU check of issue 31, kept working where CI runs: on the CPU at its
small size (32 px faces with the tiny UNet, 128 px priors, a 0.1 MP photo, 2 steps) it prints its
table with a row of every kind but the whole-photo workflow's, every row ok, and exits 0; and its
verdict flags a NaN and a tensor off the requested device. The whole-photo row is left out here
(`--rows`): it runs the main job headless, which tests/test_main_job.py runs already, and would add
half a minute to each host's suite. Its --lowvram and --novram rows are CUDA-only: here they say so.

The check runs outside ComfyUI (marked torch_only: CI runs it on the first host only)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.torch_only

ROWS = ("step", "face", "scratch", "detector", "parser", "codeformer", "cap_vstnet", "arcface", "lama", "bopbtl",
        "ddcolor", "lowvram", "novram")
HEADER = "| what | dtype | batch | size | seconds | peak working memory (MiB) | check |"


def test_the_gpu_check_runs_every_row_on_the_cpu_at_its_small_size():
    check = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--small",
                            "--rows", ",".join(ROWS)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    said = check.stdout + check.stderr[-3000:]
    assert check.returncode == 0, said
    lines = check.stdout.splitlines()
    assert lines[0].endswith("running the same checks on the CPU at a small size"), said
    assert HEADER in lines, said
    rows = [line for line in lines if line.startswith("| ") and line != HEADER and not line.startswith("| ---")]
    for key in ROWS:
        assert any(line.startswith(f"| {key}: ") for line in rows), f"no {key} row:\n{said}"
    cuda_only = [line for line in rows if line.startswith(("| lowvram: ", "| novram: "))]
    assert len(cuda_only) == 2 and all("ComfyUI turns it off on the CPU" in line and line.endswith("| not run |")
                                       for line in cuda_only), said
    assert all(line.endswith("| ok |") for line in rows if line not in cuda_only), said
    # step and face: 3 dtypes x 2 batches; the photo-level priors twice (128 px, 0.1 MP); the rest once
    assert len(rows) == 12 + 2 * 4 + 4 + 1 + 2, said


def test_the_check_flags_a_nan_and_a_tensor_off_the_requested_device(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from gpu_check import verdict

    cpu, network = torch.device("cpu"), torch.nn.Linear(2, 2)
    assert verdict([torch.ones(2), {"labels": torch.zeros(2, dtype=torch.long)}], [network], cpu) == "ok"
    assert verdict({"x": torch.tensor([1.0, float("nan")])}, [network], cpu) == "NaN"
    assert verdict([np.array([np.inf], np.float32)], [], cpu) == "NaN"
    assert verdict([torch.ones(2)], [network], torch.device("meta")) == "device mismatch"
