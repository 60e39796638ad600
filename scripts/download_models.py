"""Fetches the pack's checkpoints into ComfyUI's models folders, verified. Usage (from the repo root):

    .venv/bin/python scripts/download_models.py [--models-dir DIR] [--all | --workflow W_api.json | NAME ...]
    .venv/bin/python scripts/download_models.py --list [--models-dir DIR]

By default: the files the shipped whole-photo workflow needs, into the models folder of the ComfyUI
whose custom_nodes/ holds this pack (else of the host scripts/setup_host.sh built). --workflow: the files an API-format workflow names; NAME: those files
of the catalogue (models/files.py); --all: every file, the optional ones too. --list prints the
catalogue and what DIR holds, and fetches nothing.

Each file comes over https only into <DIR>/<folder>/<name>.part, renamed once its size and (where
the catalogue knows it) sha256 match; a cut connection resumes, a file already there is never
replaced, a failure leaves nothing behind, and the sha256 of every fetched file is printed.
Ctrl-C keeps the .part, which the next run resumes. Exit status 1 when a file failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

from harness.catalogue_text import size_text  # noqa: E402
from harness.downloads import download_all, target_path  # noqa: E402
from harness.workflows import workflow_files  # noqa: E402
from comfyui_ssdiff.models.files import CATALOGUE, CatalogueFile, catalogue_file  # noqa: E402

WHOLE_PHOTO_WORKFLOW = REPO / "shipped_workflows" / "whole_photo_restoration_api.json"


def default_models_dir() -> Path:
    """The models folder of the ComfyUI this pack sits in (ComfyUI/custom_nodes/<pack>), else that
    of the host scripts/setup_host.sh built."""
    if REPO.parent.name == "custom_nodes":
        return REPO.parent.parent / "models"
    from harness.headless import default_host

    return default_host() / "models"


def catalogue_table(models_dir: Path) -> str:
    """One row per catalogue file: name, folder, size, whether a sha256 is known, whether
    `models_dir` holds it, and its address."""
    rows = [("file", "folder", "size", "sha256", "present", "url")]
    for entry in CATALOGUE:
        name = f"{entry.name}{' (optional)' if entry.optional else ''}"
        rows.append((name, entry.folder, size_text(entry.size), "known" if entry.sha256 else "unknown",
                     "yes" if target_path(entry, models_dir).exists() else "no", entry.where_to_get))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]) for row in rows)


def chosen_files(options: argparse.Namespace, parser: argparse.ArgumentParser) -> list[CatalogueFile]:
    if options.all:
        return list(CATALOGUE)
    if options.names:
        unknown = [name for name in options.names if catalogue_file(name) is None]
        if unknown:
            parser.error(f"not in the catalogue: {', '.join(unknown)} (it has: "
                         f"{', '.join(entry.name for entry in CATALOGUE)})")
        return [catalogue_file(name) for name in options.names]
    return workflow_files(json.loads((options.workflow or WHOLE_PHOTO_WORKFLOW).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="catalogue files to fetch")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every catalogue file, the optional ones too")
    which.add_argument("--workflow", type=Path, help="the files this API-format workflow names")
    parser.add_argument("--models-dir", type=Path,
                        help="ComfyUI's models folder (default: that of the ComfyUI whose custom_nodes/ holds this "
                             "pack, else that of the host setup_host.sh built)")
    parser.add_argument("--list", action="store_true", help="print the catalogue and what is present; fetch nothing")
    options = parser.parse_args()
    options.models_dir = options.models_dir or default_models_dir()
    if options.names and (options.all or options.workflow):
        parser.error("give file names, --all or --workflow, not several")
    if options.list:
        print(catalogue_table(options.models_dir))
        return 0
    summary = download_all(chosen_files(options, parser), options.models_dir)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
