"""Shared pytest set-up: CPU JAX, strict promotion where the library asks for it, fixtures dir."""
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XTTS_BOOK_PROFILE", "ci")

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
