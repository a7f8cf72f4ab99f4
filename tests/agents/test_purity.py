"""agents/ is pure: no clock, environment, randomness or file reads in its source."""

from __future__ import annotations

import re
from pathlib import Path

import agents

FORBIDDEN = re.compile(
    r"datetime\.now|datetime\.utcnow|time\.time|time\.monotonic|os\.environ|getenv|\bopen\(|read_text|"
    r"import random|from random|uuid4|import httpx|import sqlalchemy|import structlog|temporalio"
)


def test_no_clock_environment_or_io_in_agents() -> None:
    root = Path(agents.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []
