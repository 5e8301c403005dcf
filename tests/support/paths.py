"""Where the tests find the repository, its fixtures and golden files (one place, any depth)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MAIL = FIXTURES / "mail"
GOLDEN = ROOT / "tests" / "golden"
