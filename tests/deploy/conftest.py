"""The production-stack smoke test runs as its own step (``make smoke``, part of ``make test``): it needs
nginx, PostgreSQL and Redis on this machine, one stack for the whole module, and no xdist. The ordinary
parallel run leaves it out (deselected, not skipped); asked for and unable to run, it fails."""

from __future__ import annotations

import os

import pytest

SMOKE_SWITCH = "HANDOVER_DEPLOY_SMOKE"


def smoke_requested() -> bool:
    return os.environ.get(SMOKE_SWITCH) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if smoke_requested():
        return
    deselected = [item for item in items if item.get_closest_marker("deploy") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("deploy") is None]
