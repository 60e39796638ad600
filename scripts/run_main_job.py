"""The README's main job: runs a shipped workflow headless on a bundled sample and writes the
outputs. Usage (from the repo root, after scripts/setup_host.sh):

    .venv/bin/python scripts/run_main_job.py [--workflow W] [--image PHOTO] [--inputs DIR] [--output DIR] [--steps N]
        [--download-missing]

By default: the whole-photo workflow on the bundled aged portrait (assets/sample/PROVENANCE.md).

Checkpoints are looked up in the host's models/ folders (ssdiff, facedetection, facerestore_models)
and in --models-dir (laid out the same way). For each one missing, the job says so and runs
something else: for the face detector MTCNN (its weights ship with facenet-pytorch), for the others
a tiny random network of the same architecture; the outputs then only show that the plumbing
works and are named plumbing_check_*, never a restoration. With --download-missing the job first
fetches the missing ones (https only, size and sha256 checked, as scripts/download_models.py) into
--models-dir, else the host's models/ folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

from harness.downloads import download_all, missing_files  # noqa: E402
from harness.workflows import workflow_files  # noqa: E402
from harness.headless import ComfyServer, default_host  # noqa: E402
from harness.outputs import copy_atomically, output_path  # noqa: E402
from harness.jobs import set_steps, with_shipped_scratch_masks, with_stand_ins  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", type=Path, default=REPO / "shipped_workflows" / "whole_photo_restoration_api.json")
    parser.add_argument("--image", type=Path, default=REPO / "assets" / "sample" / "ssdiff_sample_old_photo.png",
                        help="the photo for the workflow's first LoadImage node ('' keeps the workflow's own)")
    parser.add_argument("--inputs", type=Path, default=REPO / "assets" / "sample",
                        help="folder whose images the workflow's other LoadImage nodes name")
    parser.add_argument("--output", type=Path, default=REPO / "output")
    parser.add_argument("--models-dir", type=Path, help="an extra models folder (with ssdiff/ inside)")
    parser.add_argument("--steps", type=int, help="override every sampler's step count")
    parser.add_argument("--host", type=Path, default=default_host(),
                        help="the ComfyUI root (default: the host setup_host.sh built for this Python)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (never the input photos)")
    parser.add_argument("--download-missing", action="store_true",
                        help="first fetch the workflow's missing checkpoints into --models-dir, else the host's "
                             "models folder (https only, verified)")
    options = parser.parse_args()

    prompt = json.loads(options.workflow.read_text())
    photo = options.image if str(options.image) not in ("", ".") else None
    if photo is not None:
        first_load = next(node for key, node in sorted(prompt.items(), key=lambda item: int(item[0]))
                          if node["class_type"] == "LoadImage")
        first_load["inputs"]["image"] = photo.name
    roots = [options.host / "models"] + ([options.models_dir] if options.models_dir else [])
    if options.download_missing:
        download_all(missing_files(workflow_files(prompt), roots), options.models_dir or options.host / "models")
    with tempfile.TemporaryDirectory(prefix="ssdiff-job-") as work:
        models_root, replacements = with_stand_ins(prompt, roots, options.models_dir, Path(work))
        plumbing_check = any(replacement.random for replacement in replacements)
        for replacement in replacements:
            print(f"{replacement} (looked in {', '.join(map(str, roots))}).")
        if plumbing_check:
            print("The outputs only check the plumbing and are NOT a restoration; README 'Get the model files' "
                  "names each file and where it goes; --download-missing fetches them.")
        input_images = [image for image in [*options.inputs.iterdir(), *([photo] if photo else [])]
                        if image.is_file()]
        for said in with_shipped_scratch_masks(prompt, replacements, input_images):
            print(f"{said}.")
        set_steps(prompt, options.steps or (10 if plumbing_check else None))
        with ComfyServer(options.host, Path(work) / "server", models_root) as server:
            for image in input_images:
                shutil.copy(image, server.input_dir / image.name)
            print(f"Running {options.workflow.name} on {photo or options.inputs} (ComfyUI at {server.url}) ...")
            try:
                entry = server.run(prompt, timeout=6 * 3600)
            except Exception:
                print(server.log_text()[-4000:], file=sys.stderr)
                raise
            written = []
            for image in server.output_images(entry):
                name = Path(image).name
                if plumbing_check:
                    name = f"plumbing_check_{name}"
                target = output_path(options.output / name, options.overwrite,
                                     {image.resolve() for image in input_images})
                copy_atomically(image, target)
                written.append(target)
    print("Wrote:\n" + "\n".join(f"  {path}" for path in written))
    if plumbing_check:
        print("(plumbing check with random weights: not a restoration)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
