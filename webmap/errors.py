"""Engine exceptions to HTTP status codes, in one table, as JSON ``{"error": "..."}``.

Registered by :func:`webmap.create_app`. Client errors (4xx) carry the one-line engine
message; server errors (5xx) are logged with their traceback and answered with a generic
message, so that server paths and internals never reach the client.
"""

from __future__ import annotations

import logging
from typing import Final

from flask import Flask, Response, current_app, has_app_context, jsonify
from werkzeug.exceptions import HTTPException

from kantong.engine.errors import (
    ConfigError,
    EmptyInputError,
    EngineError,
    InputError,
    PrivacyError,
    RunError,
    SolverError,
)

logger = logging.getLogger(__name__)

#: Exception class -> HTTP status; the most specific class in the exception's MRO wins.
STATUS_CODES: Final[dict[type[BaseException], int]] = {
    ConfigError: 500,       # the server is misconfigured, not the request
    EmptyInputError: 404,   # nothing to return
    InputError: 400,        # a bad parameter (unknown regency, resolution, ...)
    PrivacyError: 403,      # the answer would publish withheld data
    RunError: 503,          # the served run is missing or broken
    SolverError: 500,
    EngineError: 500,
}


def status_for(exc: BaseException) -> int:
    """Return the HTTP status of an exception per :data:`STATUS_CODES` (500 if unlisted).

    Examples
    --------
    >>> status_for(InputError("bad")), status_for(ConfigError("bad")), status_for(KeyError())
    (400, 500, 500)
    """
    for klass in type(exc).__mro__:
        if klass in STATUS_CODES:
            return STATUS_CODES[klass]
    return 500


def error_response(message: str, status: int) -> Response:
    """Return a JSON error response ``{"error": message}`` with ``status``."""
    response = jsonify({"error": message})
    response.status_code = status
    return response


def client_message(message: str) -> str:
    """Return an engine message fit for a client: the served run directories are not named.

    Engine messages start with the file they are about (``/srv/runs/2025: regency '9' not
    in this run``); the server's directory layout is none of the client's business, so the
    configured ``RUN_DIR`` and ``COMPARE_RUN_DIR`` become ``run`` and ``compare run``.

    Examples
    --------
    >>> client_message("no app context: unchanged")
    'no app context: unchanged'
    """
    if not has_app_context():
        return message
    for key, name in (("COMPARE_RUN_DIR", "compare run"), ("RUN_DIR", "run")):
        path = current_app.config.get(key)
        if path:
            message = message.replace(str(path), name)
    return message


def _engine_error(exc: EngineError) -> Response:
    status = status_for(exc)
    if status >= 500:
        logger.error("request failed: %s", exc, exc_info=exc)
        return error_response(f"server error ({type(exc).__name__}); see the server log", status)
    return error_response(client_message(str(exc)), status)


def _http_error(exc: HTTPException) -> Response:
    response = error_response(exc.description or exc.name, exc.code or 500)
    for key, value in exc.get_headers():
        if key.lower() == "allow":
            response.headers[key] = value
    return response


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    logger.error("unexpected error: %s", exc, exc_info=exc)
    return error_response("internal server error; see the server log", 500)


def register_error_handlers(app: Flask) -> None:
    """Register the JSON error handlers of the table on ``app``."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(EngineError, _engine_error)
    app.register_error_handler(Exception, _unexpected)
