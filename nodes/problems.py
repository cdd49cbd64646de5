"""Errors as HTTP answers: every failure becomes an RFC 9457 ``application/problem+json`` response.

Our own ``ProblemError``s render themselves; the framework's 404/405/validation errors and anything
unexpected are mapped here, once, so no client ever sees an HTML error page or a bare traceback. A
client that disconnects before its body is read is no error of ours and nobody is left to answer: it
is logged on one line.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from nodes.errors import (
    FieldIssue,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ProblemError,
    ServiceUnavailable,
)
from nodes.protocol import summarise
from nodes.store import StorageUnavailable

logger = logging.getLogger("tierwise")

PROBLEM_JSON = "application/problem+json"

CLIENT_CLOSED_REQUEST = 499
"""The status logged for a request whose client left before it was read (nginx's convention); never sent."""


def problem_response(exc: ProblemError) -> JSONResponse:
    """Render a problem as an RFC 9457 response."""
    return JSONResponse(exc.to_problem(), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of a 405: every method some route answers on this request's path.

    Each method is tried against the app's routes (``BaseRoute.matches``, which included routers
    answer too), so a path served by several routes lists all of their methods.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error — ours, the framework's, and the unexpected — to problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            wrong = MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}", headers={"Allow": allowed_methods(request)}
            )
            return problem_response(wrong)
        if exc.status_code == 404:
            return problem_response(NotFound(f"there is nothing at {request.url.path}"))
        generic = ProblemError(str(exc.detail))
        generic.status = exc.status_code  # type: ignore[misc]
        return problem_response(generic)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        issues = [FieldIssue(tuple(error["loc"]), str(error["msg"])) for error in exc.errors()]
        return problem_response(InvalidRequest(summarise(issues), errors=issues))

    async def on_storage(request: Request, exc: Exception) -> JSONResponse:
        logger.error("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            ServiceUnavailable("storage is unavailable right now; nothing was accepted, so retry the request later")
        )

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        logger.info("%s %s: the client disconnected before its request was read", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(InternalError())

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StorageUnavailable, on_storage)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_unexpected)
