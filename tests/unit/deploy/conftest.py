"""Session fixtures of tests/unit/deploy: each artefact is rendered or parsed once."""
from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_render import COMPOSE_FILE, KUSTOMIZATIONS, OVERLAYS, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization, rendered once per test session."""
    return {rel: render(rel) for rel in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def overlays(rendered) -> dict[str, list[dict[str, Any]]]:
    return {o: rendered[f"overlays/{o}"] for o in OVERLAYS}


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())
