"""Every failure as problem+json: the framework's 404, 405 and validation errors, storage outages, and bugs."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nodes.problems import PROBLEM_JSON, install_problem_handlers
from nodes.store import StorageUnavailable


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/storage")
    async def storage() -> None:
        raise StorageUnavailable("SQLite: database or disk is full")

    @app.get("/bug")
    async def bug() -> None:
        raise KeyError("a bug")

    @app.put("/bug")
    async def not_a_bug() -> None:
        return None

    @app.get("/typed/{n}")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return TestClient(app, raise_server_exceptions=False)


def test_unknown_paths_and_wrong_methods(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON
    assert missing.json()["detail"] == "there is nothing at /nowhere"
    wrong = client.post("/bug")
    assert wrong.status_code == 405 and wrong.json()["detail"] == "POST is not allowed on /bug"
    assert wrong.headers["allow"] == "GET, PUT"
    assert client.delete("/typed/7").headers["allow"] == "GET"


def test_framework_validation_is_a_422_naming_the_place(client: TestClient) -> None:
    invalid = client.get("/typed/seven")
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["path", "n"]


def test_a_storage_outage_is_a_503_with_retry_after(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tierwise"):
        outage = client.get("/storage")
    assert outage.status_code == 503 and outage.headers["retry-after"] == "5"
    assert (
        outage.json()["detail"] == "storage is unavailable right now; nothing was accepted, so retry the request later"
    )
    assert "database or disk is full" in caplog.text


def test_a_bug_is_a_500_that_leaks_nothing(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tierwise"):
        broken = client.get("/bug")
    assert broken.status_code == 500 and broken.json()["type"] == "/problems/internal-error"
    assert "a bug" not in broken.text and "KeyError" in caplog.text
