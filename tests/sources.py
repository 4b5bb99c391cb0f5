"""The product's own source lines, for tests that keep a construct out of it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "storage")


def lines_matching(pattern: re.Pattern[str]) -> list[str]:
    """Every line of bot/, handlers/ and storage/ that ``pattern`` finds, as ``path:n: line``."""
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
