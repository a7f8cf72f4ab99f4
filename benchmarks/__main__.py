"""Run every benchmark module, write benchmarks/results/<name>.json, refresh README's figures.

A benchmark module is `benchmarks/bench_<name>.py` with:
    NAME: str                                  results file stem
    def run() -> dict[str, Any]                the measured figures (JSON-able)
    def summarize(result) -> list[str]         markdown lines for README

`python -m benchmarks [name ...]` runs all of them, or only the named ones.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _modules(names: list[str]) -> list[Any]:
    found = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if names:
        found = [m for m in found if m.removeprefix("bench_") in names]
    return [importlib.import_module(f"benchmarks.{m}") for m in found]


def _refresh_readme() -> None:
    lines: list[str] = []
    for mod in _modules([]):
        path = RESULTS / f"{mod.NAME}.json"
        if path.exists():
            lines.extend(mod.summarize(json.loads(path.read_text())))
            lines.append("")
    if not README.exists():
        return
    text = README.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(head + START + "\n" + "\n".join(lines).rstrip() + "\n" + END + tail)


def main(argv: list[str]) -> int:
    """Run the selected benchmarks."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for mod in _modules(argv):
        print(f"== {mod.NAME}", flush=True)
        started = time.perf_counter()
        result = mod.run()
        result["_meta"] = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 2),
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        }
        (RESULTS / f"{mod.NAME}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print("\n".join(mod.summarize(result)), flush=True)
    _refresh_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
