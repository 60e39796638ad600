"""Checkpoint files damaged on purpose, shared by the reader's tests (tests/core) and the server's
(tests/robustness): needs only torch."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

THOUSAND_FLOATS = rb"cpu(q.|\x94)M\xe8\x03"
"""How torch.save pickles the location and size of a storage of 1000 elements (after its memo
opcode: BINPUT n, or MEMOIZE)."""


def with_storage_claim(source: Path, target: Path, numel: int) -> Path:
    """A copy of the torch zip file `source` whose pickle says its first storage of 1000 elements
    holds `numel` (issue 26's damaged .pth: a storage claiming 10^12 bytes)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data, count = re.subn(THOUSAND_FLOATS, lambda match: b"cpu" + match.group(1) + b"\x8a\x05"
                                      + numel.to_bytes(5, "little"), data, count=1, flags=re.S)
                assert count == 1, "the storage of 1000 floats, as pickled"
            out.writestr(info, data)
    return target
