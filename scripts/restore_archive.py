"""Restores a folder of photos with one workflow: SOURCE (searched recursively for the formats
ComfyUI's LoadImage reads) -> DESTINATION, which mirrors the source tree. Usage (from the repo
root, after scripts/setup_host.sh):

    .venv/bin/python scripts/restore_archive.py SOURCE DESTINATION [--workflow W] [--photo-node ID]
        [--models-dir DIR] [--steps N] [--threads N]
        [--ray [ADDRESS] --workers N --cpus-per-worker C --gpus-per-worker G]

Each photo's outputs are written as DESTINATION/<its folder>/<stem>_<SaveImage prefix>.png (never
over an existing file). DESTINATION/ssdiff_archive_manifest.json records every photo (size,
content hash, workflow hash, status, outputs, error): a rerun skips what is done and retries what
failed. A photo that fails is recorded and the run goes on. Ctrl-C stops after the current photo.
ComfyUI starts once for the whole run; with --ray, once per Ray actor.

Checkpoints are looked up as for scripts/run_main_job.py; for each missing one a tiny random
network runs instead, and every output is then named plumbing_check_* (not a restoration).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

from harness.archive import (Manifest, RunSettings, StopAfterCurrent, find_photos, pending_photos,  # noqa: E402
                             photo_node_of, restore_locally, workflow_sha256)
from harness.headless import default_host  # noqa: E402
from harness.jobs import set_steps, with_stand_ins  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--workflow", type=Path, default=REPO / "shipped_workflows" / "whole_photo_restoration_api.json",
                        help="an API-format workflow (ComfyUI: Workflow > Export (API))")
    parser.add_argument("--photo-node", help="id of the LoadImage node that takes each photo (default: the only one)")
    parser.add_argument("--models-dir", type=Path, help="an extra models folder (with ssdiff/ inside)")
    parser.add_argument("--steps", type=int, help="override every sampler's step count")
    parser.add_argument("--host", type=Path, default=default_host(),
                        help="the ComfyUI root (default: the host setup_host.sh built for this Python)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one photo may take")
    parser.add_argument("--threads", type=int,
                        help="CPU threads of each ComfyUI (default: all cores; with --ray, --cpus-per-worker). "
                             "CPU outputs are the same bytes wherever they are made at the same count")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="run as a Ray Data job: on the cluster at ADDRESS ('auto' for the one this "
                             "machine belongs to), or on a local Ray without an address")
    parser.add_argument("--workers", type=int, default=1, help="with --ray: actors, each with its own ComfyUI")
    parser.add_argument("--cpus-per-worker", type=int, default=1, help="with --ray: CPUs each actor holds")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="with --ray: GPUs each actor holds")
    return parser.parse_args()


def main() -> int:
    options = arguments()
    source, destination = options.source.resolve(), options.destination.resolve()
    if not source.is_dir():
        raise SystemExit(f"SOURCE {source} is not a folder")
    if destination == source or source in destination.parents:
        raise SystemExit(f"DESTINATION {destination} is inside SOURCE {source}: outputs would be taken for photos "
                         "on the next run; choose a folder outside it")

    prompt = json.loads(options.workflow.read_text())
    photo_node = photo_node_of(prompt, options.photo_node)
    set_steps(prompt, options.steps)
    roots = [options.host / "models"] + ([options.models_dir] if options.models_dir else [])
    photos = find_photos(source)
    with tempfile.TemporaryDirectory(prefix="ssdiff-archive-") as work:
        models_root, missing = with_stand_ins(prompt, roots, options.models_dir, Path(work))
        for replacement in missing:
            print(f"{replacement} (looked in {', '.join(map(str, roots))})"
                  + (": outputs named plumbing_check_*" if replacement.random else ""))
        workflow = workflow_sha256(prompt)
        manifest = Manifest(destination)
        pending, done_before = pending_photos(photos, manifest, workflow)
        print(f"{len(photos)} photos in {source}: {done_before} done before, {len(pending)} to restore.")
        if not pending:
            return 0
        settings = RunSettings(options.host, prompt, photo_node, source, destination, models_root,
                               "plumbing_check_" if any(replacement.random for replacement in missing) else "", options.timeout, options.threads)
        started, restored, failed = time.monotonic(), 0, 0
        with StopAfterCurrent() as stop:
            if options.ray:
                from harness.archive_ray import restore_on_ray
                entries = restore_on_ray(settings, pending, workflow, stop,
                                         None if options.ray == "local" else options.ray, options.workers,
                                         options.cpus_per_worker, options.gpus_per_worker)
            else:
                entries = restore_locally(settings, pending, workflow, Path(work) / "server", stop)
            for entry in tqdm(entries, total=len(pending), unit="photo"):
                manifest.record(entry)
                if entry.status == "done":
                    restored += 1
                else:
                    failed += 1
                    tqdm.write(f"failed: {entry.file}: {entry.error}")
        elapsed = time.monotonic() - started
    left = len(pending) - restored - failed
    print(f"Restored {restored}, skipped {done_before} done before, failed {failed}"
          + (f", {left} left for the next run" if left else "")
          + (f"; {elapsed / (restored + failed):.1f} s per photo" if restored + failed else "")
          + f". Manifest: {manifest.path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
