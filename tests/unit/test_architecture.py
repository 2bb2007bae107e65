"""The layers: domain is pure, schemas import nothing of ours, edges are independent."""

from __future__ import annotations

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
    forbidden = ("datetime.now(", "datetime.utcnow(", "time.time(", "open(", "import asyncio",
                 "print(")
    for path in (ROOT / "domain").rglob("*.py"):
        text = path.read_text()
        for word in forbidden:
            assert word not in text, f"{path.relative_to(ROOT)} uses {word}"
