"""Rewrites the README's table of model files from the catalogue (models/files.py), between its
markers. tests/test_catalogue.py fails while the README's table differs from the catalogue.

    python scripts/write_catalogue_table.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.catalogue_text import README_TABLE_END, README_TABLE_START, readme_table  # noqa: E402


def main() -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = text.index(README_TABLE_START), text.index(README_TABLE_END) + len(README_TABLE_END)
    readme.write_text(text[:start] + readme_table() + text[end:])
    print(f"wrote the table of model files into {readme}")


if __name__ == "__main__":
    main()
