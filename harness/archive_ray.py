"""The archive run as a Ray Data job on an existing Ray cluster (or a local one): each worker an
actor that holds one ComfyUI with its models loaded, writing outputs atomically into the
destination (a filesystem every worker sees); the driver records every result in the manifest,
its only source of truth. Needs the optional `ray[data]` (pip install 'comfyui-ssdiff[ray]')."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

from .archive import Entry, Photo, PhotoRestorer, RunSettings, StopAfterCurrent

REPO = Path(__file__).resolve().parent.parent


class RayPhotoRestorer:
    """A Ray Data actor: one ComfyUI for every photo it is given."""

    def __init__(self, settings: RunSettings, workflow: str):
        self.workflow = workflow
        self.restorer = PhotoRestorer(settings, Path(tempfile.mkdtemp(prefix="ssdiff-ray-worker-")))

    def __call__(self, batch: dict) -> dict:
        entries = [self.restorer.restore(Photo(**json.loads(text)), self.workflow) for text in batch["photo"]]
        return {"entry": [json.dumps(asdict(entry)) for entry in entries]}

    def __del__(self) -> None:
        self.restorer.close()


def restore_on_ray(settings: RunSettings, pending: list[Photo], workflow: str, stop: StopAfterCurrent,
                   address: str | None = None, workers: int = 1, cpus_per_worker: int = 1,
                   gpus_per_worker: float = 0.0) -> Iterator[Entry]:
    """Each pending photo through a pool of `workers` actors, results as they finish. Each actor's
    ComfyUI computes on its `cpus_per_worker` unless the settings name a thread count."""
    if settings.threads is None:
        settings = replace(settings, threads=cpus_per_worker)
    try:
        import ray
    except ImportError as error:
        raise SystemExit("--ray needs Ray Data: pip install 'ray[data]' (or the pack's 'ray' extra)") from error
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        rows = [{"photo": json.dumps(asdict(photo))} for photo in pending]
        results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            RayPhotoRestorer, fn_constructor_args=(settings, workflow), batch_size=1, concurrency=workers,
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
        for row in results.iter_rows():
            yield Entry(**json.loads(row["entry"]))
            if stop.requested:
                return
    finally:
        ray.shutdown()
