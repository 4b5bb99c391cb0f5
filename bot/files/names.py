"""File names and sizes as the file flow writes and shows them."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["DEFAULT_NAME", "clean_name", "human_size"]

#: The name of a file whose name cleans to nothing.
DEFAULT_NAME: Final = "file"
#: Longest name, in UTF-8 bytes (an extension of up to 32 bytes is kept when cutting).
_MAX_NAME: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_name(name: str, fallback: str = DEFAULT_NAME) -> str:
    """A safe single path component: no separators or control characters, Unicode kept."""
    name = unicodedata.normalize("NFC", name)
    name = _CONTROL.sub("", name).replace("/", "_").replace("\\", "_")
    name = name.strip().strip(".").strip()
    if not name.strip("_ ."):
        return fallback  # only separators, dots and control characters: nothing left of it
    if len(name.encode()) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and stem and len(ext.encode()) <= 32 else ""
        budget = _MAX_NAME - (len(keep.encode()) + 1 if keep else 0)
        base = (stem if keep else name).encode()[:budget].decode(errors="ignore").rstrip()
        name = f"{base}.{keep}" if keep else base
    return name or fallback


def human_size(size: int) -> str:
    """``size`` bytes for people: "512 B", "1.5 KB", "2.0 MB", "3.1 GB"."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"
