"""What every HTTP handler shares: error answers, the request boundary (size limit, timeout,
catch-all, headers), and reading JSON or form bodies into plain data.

Answers are JSON: ``{"errors": {"field": "reason"}}`` for field errors, ``{"error": "..."}``
for anything else. No answer carries a stack trace or a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: On every answer; the pages need no script, frame, image or font from anywhere.
SECURITY_HEADERS = [
    (b"content-security-policy", (b"default-src 'none'; style-src 'unsafe-inline'; "
                                  b"form-action 'self'; frame-ancestors 'none'; "
                                  b"base-uri 'none'")),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]
_CSP = b"content-security-policy"


class HttpError(Exception):
    """An answer other than success, raised anywhere inside a handler."""

    def __init__(self, status: int, body: dict[str, Any],
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    @classmethod
    def field(cls, name: str, reason: str) -> HttpError:
        """A 400 that names the request field at fault."""
        return cls(400, {"errors": {name: reason}})

    @classmethod
    def message(cls, status: int, text: str, **headers: str) -> HttpError:
        """An error answer with a message the client sees (and headers)."""
        return cls(status, {"error": text}, {k.replace("_", "-"): v for k, v in headers.items()})


class BodyTooLarge(HttpError):
    """The request body is over the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, {"error": f"the request body is larger than {limit} bytes"})


def answer(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
           ) -> JSONResponse:
    """A JSON response."""
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Turn an HttpError into its JSON answer."""
    assert isinstance(exc, HttpError)
    return answer(exc.status, exc.body, exc.headers)


async def on_starlette_error(request: Request, exc: Exception) -> Response:
    """Unknown path (404), wrong method (405) and the like, as JSON."""
    assert isinstance(exc, HTTPException)
    text = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return answer(exc.status_code, {"error": text}, exc.headers)


async def on_store_error(request: Request, exc: Exception) -> Response:
    """The database did not answer: a retry later may work."""
    log.warning("action=http_store_failed route=%s error=%r", _route_of(request.url.path),
                str(exc)[:300])
    return answer(503, {"error": "the database is not answering; try again shortly"},
                  {"Retry-After": "5"})


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged here with its traceback, answered with a bare 500."""
    log.error("action=http_failed method=%s route=%s error=%s", request.method,
              _route_of(request.url.path), type(exc).__name__, exc_info=exc)
    return answer(500, {"error": "internal error; the worker's log has the details"})


def _route_of(path: str) -> str:
    """The path for logs, with unsubscribe tokens left out."""
    return "/u/{token}" if path.startswith("/u/") else path[:100]


class Boundary:
    """Outermost layer: request size limit (counted while reading, not trusting
    Content-Length alone), a time limit per request, the security headers, and a last
    catch so that nothing escapes to the server unanswered."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        waiting_for_body = False
        received = 0
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send, 413, BodyTooLarge(self.max_body_bytes).body, close=True)
            return

        async def limited_receive() -> Message:
            nonlocal received, waiting_for_body
            waiting_for_body = True  # still true if the time limit strikes while we wait
            message = await receive()
            waiting_for_body = False
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() not in dict(SECURITY_HEADERS)]
                # workspace (issue 17): its pages set their own policy (their CSS and
                # script from 'self'), which replaces the default one
                own = [h for h in message.get("headers", []) if h[0].lower() == _CSP]
                message = {**message, "headers": headers + own + [
                    h for h in SECURITY_HEADERS if not (own and h[0] == _CSP)]}
            await send(message)

        timer = asyncio.timeout(self.timeout_s)
        try:
            async with timer:
                await self.app(scope, limited_receive, tracked_send)
        except TimeoutError:
            if not timer.expired():
                raise
            slow_client = waiting_for_body
            log.warning("action=http_timeout route=%s waiting_for=%s timeout_s=%s",
                        _route_of(scope.get("path", "")), "client" if slow_client else "worker",
                        self.timeout_s)
            if not started:
                if slow_client:
                    await _send_json(send, 408, {"error": "the request body did not arrive in "
                                                 f"{self.timeout_s:g} s"}, close=True)
                else:
                    await _send_json(send, 503, {"error": "the request took longer than "
                                                 f"{self.timeout_s:g} s; try again"})
        except HttpError as exc:  # raised outside Starlette's handlers
            if not started:
                await _send_json(send, exc.status, exc.body, close=isinstance(exc, BodyTooLarge))
        except Exception as exc:  # the last catch of the HTTP door: nothing escapes unanswered
            if not started:
                # Starlette's error middleware answers and re-raises; only what got past it
                # unanswered is logged here.
                log.error("action=http_failed route=%s error=%s",
                          _route_of(scope.get("path", "")), type(exc).__name__, exc_info=exc)
                await _send_json(send, 500, {"error": "internal error; the worker's log has "
                                             "the details"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length",
                                                        str(len(data)).encode())]
    if close:  # the rest of the body is not read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status,
                "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": data})


# --- bodies -----------------------------------------------------------------------------------

def media_type(request: Request) -> str:
    """The request's media type, lower-cased, without parameters."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def read_data(request: Request) -> tuple[dict[str, Any] | FormData, bytes]:
    """The body as a JSON object or form fields, and its raw bytes. 415 for another media
    type, 400 for malformed JSON."""
    kind = media_type(request)
    if kind not in JSON_TYPES and not kind.endswith("+json") and kind not in FORM_TYPES:
        raise HttpError.message(415, "send application/json or application/x-www-form-"
                                f"urlencoded (got {kind or 'no Content-Type'})")
    raw = await request.body()
    if kind in FORM_TYPES:
        return await request.form(max_files=0, max_fields=200), raw
    return parse_json_object(raw), raw


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or an HttpError naming the problem."""
    if not raw.strip():
        raise HttpError.message(400, "malformed JSON: the body is empty")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise HttpError.message(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column "
                                f"{exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise HttpError.message(400, f"malformed JSON: {reason}") from None
    if not isinstance(data, dict):
        raise HttpError.message(400, "the body must be a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def form_dict(form: FormData, comma_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Form fields as plain data: ``fields[NAME]`` goes under ``fields``; a key sent more
    than once is joined with ", " (``comma_keys`` with ","); file uploads are refused."""
    out: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise HttpError.field(key, "file uploads are not accepted")
        target, name = out, key
        if key.startswith("fields[") and key.endswith("]") and len(key) > 8:
            target, name = fields, key[7:-1]
        if name in comma_keys and target.get(name):
            target[name] = f"{target[name]},{value}"
        elif name in target and target[name] not in ("", None) and value != "":
            target[name] = f"{target[name]}, {value}"
        elif value != "" or name not in target:
            target[name] = value
    if fields:
        if not isinstance(out.get("fields", {}), dict):
            raise HttpError.field("fields", "use fields[NAME]=value in a form")
        out["fields"] = {**out.get("fields", {}), **fields}
    return out
