"""The layers: domain is pure, schemas import nothing of ours, edges are independent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout


def test_domain_reads_no_clock_and_does_no_io() -> None:
    forbidden = [r"\.now\(", r"\.utcnow\(", r"\btime\.time\(", r"\bopen\(",
                 r"^import asyncio", r"\bprint\("]
    for path in (ROOT / "domain").rglob("*.py"):
        text = path.read_text()
        for pattern in forbidden:
            assert not re.search(pattern, text, re.M), f"{path.relative_to(ROOT)} matches {pattern}"
