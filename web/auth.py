"""`--auth-token`: every route but the health checks then needs the token, as
`Authorization: Bearer <token>` (scripts, Ray's CLI) or the cookie the login page sets
(browsers, so the Ray UI's own requests carry it)."""

from __future__ import annotations

import hmac
import html
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType, ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.params import Body
from litestar.response import Redirect
from litestar.types import ASGIApp, Receive, Scope, Send

from web.reply import error_response

TOKEN_COOKIE = "raylake_token"  # noqa: S105 (a cookie name)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login"})


def _presented(scope: Scope) -> str | None:
    headers = dict(scope.get("headers", []))
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return None


class TokenAuth(ASGIMiddleware):
    def __init__(self, token: str) -> None:
        self.token = token.encode()

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in OPEN_PATHS:
            await next_app(scope, receive, send)
            return
        presented = _presented(scope)
        if presented is not None and hmac.compare_digest(presented.encode(), self.token):
            await next_app(scope, receive, send)
            return
        accept = dict(scope.get("headers", [])).get(b"accept", b"")
        if scope.get("method") == "GET" and b"text/html" in accept:
            target = scope["path"]
            response: Response[Any] = Redirect(f"/login?next={target}", status_code=303)
        else:
            response = error_response(
                401, "unauthorized", "this raylake needs `Authorization: Bearer <token>`"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
        await response.to_asgi_response(None, None)(scope, receive, send)  # type: ignore[arg-type]


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raylake: sign in</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:24em}}
input{{width:100%;padding:.4em;margin:.4em 0}}.error{{color:#b00}}</style></head>
<body><h1>raylake</h1><p>This history server needs its access token.</p>
{error}<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" autofocus></label>
<input type="submit" value="Sign in"></form></body></html>"""


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@get("/login", media_type="text/html")
async def login_page(next: str = "/") -> str:
    return _LOGIN_PAGE.format(error="", next=html.escape(_safe_next(next)))


@post("/login", media_type="text/html")
async def login(
    request: Request[Any, Any, Any],
    data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED),  # noqa: B008
) -> Any:
    token: str = request.app.state.config.auth_token or ""
    target = _safe_next(data.get("next", "/"))
    if token and hmac.compare_digest(data.get("token", "").encode(), token.encode()):
        cookie = Cookie(key=TOKEN_COOKIE, value=token, path="/", httponly=True, samesite="lax")
        return Redirect(target, status_code=303, cookies=[cookie])
    page = _LOGIN_PAGE.format(
        error='<p class="error">That token is not right.</p>', next=html.escape(target)
    )
    return Response(page, status_code=401, media_type="text/html")


ROUTES = [login_page, login]
