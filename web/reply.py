"""Ray's JSON envelopes, and raylake's one error shape.

The dashboard answers `{"result": <ok>, "msg": <text>, "data": {...}}`
(`ray/dashboard/routes.py: rest_response`); raylake's own errors use the same shape
(`result: false`), so the Ray UI shows their message, with an `error` code in `data`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException

_ENCODER = msgspec.json.Encoder()


def json_response(
    content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        _ENCODER.encode(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def rest_response(data: Any, message: str = "", *, ok: bool = True) -> Response[bytes]:
    """Ray's envelope: `data` is the payload's dict (`{"result": ...}` for state APIs)."""
    return json_response({"result": ok, "msg": message, "data": data})


class ApiError(HTTPException):
    """A request raylake cannot answer, with a stable `code` and a clear message."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code


def error_response(status_code: int, code: str, message: str) -> Response[bytes]:
    return json_response(
        {"result": False, "msg": message, "data": {"error": code}}, status_code=status_code
    )


def api_error_handler(_: Any, exc: ApiError) -> Response[bytes]:
    return error_response(exc.status_code, exc.code, str(exc.detail))


def http_error_handler(_: Any, exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (404 route, 405, 400 validation) in the same shape."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return error_response(exc.status_code, code, str(exc.detail))
