"""The API process's composition: uvicorn's factory installs Celery's publisher before the app starts."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.publishing import BackgroundPublisher
from commands.apiserver import APP, create_app
from shared.requests import dispatch
from worker import canvas

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 (not in the lock); its httpx transport works
    from starlette.testclient import TestClient


@pytest.fixture
def api_env(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    settings_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'api.db'}")
    settings_env.setenv("BROKER_URL", "memory://")
    dispatch.set_publisher(None)
    yield settings_env
    dispatch.set_publisher(None)


def test_uvicorn_runs_the_factory_that_wires_the_publisher() -> None:
    module, name = APP.split(":")
    assert (module, name) == (create_app.__module__, create_app.__name__)


def test_the_api_process_publishes_celery_chains_from_a_background_thread(api_env: pytest.MonkeyPatch) -> None:
    with TestClient(create_app()):
        publisher = dispatch.get_publisher()
        assert isinstance(publisher, BackgroundPublisher) and publisher.inner is canvas.publish
    assert dispatch.get_publisher() is canvas.publish


def test_an_api_built_without_a_publisher_does_not_start(api_env: pytest.MonkeyPatch) -> None:
    from api.app import create_app as bare_app

    with pytest.raises(dispatch.NoPublisher), TestClient(bare_app()):
        pass
