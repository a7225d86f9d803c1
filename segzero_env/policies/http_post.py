"""One HTTP POST with a total deadline, for the clients of remote policies.

A socket timeout bounds each read, not the request: a server that sends one byte a second never
trips it. :func:`post` also starts a timer for the whole request (connect, send, headers, body);
when it runs out, the timer shuts the request's socket down, which ends any blocked read, and the
call raises ``TimeoutError``. Proxies from the environment (``HTTP(S)_PROXY``) work as in
``urllib``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HTTPAnswer:
    """What the server sent back, whatever its status.

    Attributes:
        status: The HTTP status code.
        content_type: The ``Content-Type`` header (``""`` when absent).
        body: The body bytes.
        retry_after: The ``Retry-After`` header in seconds, when it is a number.
    """

    status: int
    content_type: str
    body: bytes
    retry_after: float | None = None


class _Deadline:
    """Shuts down the sockets of one request when its time runs out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def connection_class(self, base: type) -> type:
        deadline = self

        class DeadlineConnection(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                deadline.track(self.sock)

        return DeadlineConnection


def _shut(sock: socket.socket) -> None:
    # the plain-socket shutdown, also for TLS sockets: it wakes a read blocked in another thread
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(self.deadline.connection_class(http_class), req, **kwargs)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(self.deadline.connection_class(http_class), req, **kwargs)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value and value.replace(".", "", 1).isdigit():
        return float(value)
    return None


def post(url: str, payload: bytes, headers: dict[str, str], read_timeout: float, total_timeout: float) -> HTTPAnswer:
    """POST ``payload`` to ``url`` and return the answer, within ``total_timeout`` seconds in all.

    Args:
        url: The endpoint.
        payload: The request body.
        headers: Request headers.
        read_timeout: Seconds one socket operation (connect, one read) may wait.
        total_timeout: Seconds the whole request may take, however the server paces its answer.

    Returns:
        The answer, for every HTTP status (error statuses included, with their body).

    Raises:
        TimeoutError: The request took longer than ``total_timeout`` or a read than ``read_timeout``.
        urllib.error.URLError, ConnectionError, http.client.HTTPException: The connection failed.
    """
    deadline = _Deadline(total_timeout)
    opener = urllib.request.build_opener(_DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline))
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        answer = _send(opener, request, read_timeout)
    except Exception as err:
        if deadline.expired:
            raise TimeoutError(f"no complete answer within {total_timeout:g} s") from err
        raise
    finally:
        deadline.cancel()
    if deadline.expired:  # the socket was shut down mid-read: the body may be cut short
        raise TimeoutError(f"no complete answer within {total_timeout:g} s")
    return answer


def _send(opener: urllib.request.OpenerDirector, request: urllib.request.Request, read_timeout: float) -> HTTPAnswer:
    try:
        with opener.open(request, timeout=read_timeout) as response:
            body = response.read()
            return HTTPAnswer(response.status, response.headers.get("Content-Type", ""), body, None)
    except urllib.error.HTTPError as err:
        with err:
            headers = err.headers
            content_type = headers.get("Content-Type", "") if headers is not None else ""
            return HTTPAnswer(err.code, content_type, err.read(), _retry_after(headers))
