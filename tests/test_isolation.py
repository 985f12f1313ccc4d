"""The cache isolation of conftest reaches fixtures of every scope, not only the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from irnbench.weights import user_home


def _where() -> dict[str, str | None]:
    return {"home": str(user_home().resolve()), "offline": os.environ.get("HF_HUB_OFFLINE")}


@pytest.fixture(scope="module")
def seen_by_module_fixture() -> dict[str, str | None]:
    """What a module-scoped fixture (as test_report's and test_compress's runs) writes into."""
    return _where()


@pytest.fixture(scope="session")
def seen_by_session_fixture() -> dict[str, str | None]:
    return _where()


def test_wide_scoped_fixtures_see_an_isolated_offline_home(
    seen_by_module_fixture, seen_by_session_fixture, tmp_path_factory
):
    """Both are arguments, so pytest sets them up before the function-scoped isolation."""
    base = tmp_path_factory.getbasetemp().resolve()
    for seen in (seen_by_module_fixture, seen_by_session_fixture):
        assert Path(seen["home"]).is_relative_to(base), seen
        assert seen["offline"] == "1"


def test_each_test_still_gets_its_own_home(seen_by_module_fixture):
    assert _where()["home"] != seen_by_module_fixture["home"]
