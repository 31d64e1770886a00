"""Fixtures shared by every test: a clean environment for the Lamatic settings."""

from __future__ import annotations

import os

import pytest

LAMATIC_ENV_PREFIX = "LAMATIC_"


@pytest.fixture(autouse=True)
def isolated_lamatic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``LAMATIC_*`` variable, so a developer's shell cannot change a result.

    Tests that need a variable set it with ``monkeypatch.setenv``; monkeypatch restores the
    original environment afterwards.
    """
    for name in list(os.environ):
        if name.upper().startswith(LAMATIC_ENV_PREFIX):
            monkeypatch.delenv(name, raising=False)
