"""Writes that a crash never leaves half done: a run folder's JSON, an export's manifest, a report."""

import json
import os
from pathlib import Path


def write_text(path: Path, text: str):
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, value):
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
