"""HTTP client of the scoring service (standard library only: no Ray, no extra package).

Every call has a timeout, carries a request id (reused on every retry, so a retry never scores
twice) and retries with exponential backoff on 429 / 503 (honouring ``Retry-After``), on a
dropped connection and on a timeout. Errors say what to do.

>>> client = ScorerClient("http://127.0.0.1:1", retries=0, timeout_s=0.5)
>>> client.score([{"sample_id": "a", "reply": "r"}])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
segzero_env.service.client.ServiceError: cannot reach the scoring service at http://127.0.0.1:1/score ...
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

TOKEN_ENV = "SEGZERO_SERVICE_TOKEN"
"""Environment variable holding the bearer token when none is passed."""

RETRY_STATUSES = (429, 502, 503, 504)


class ServiceError(RuntimeError):
    """The service refused a request or could not be reached; ``status`` is the HTTP code (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ScorerClient:
    """Talk to ``segzero serve``.

    Args:
        url: The service's base URL, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token (default: ``$SEGZERO_SERVICE_TOKEN``, else none).
        timeout_s: Seconds one attempt may take (connect and each read).
        retries: Further attempts after a retryable failure.
        backoff_s: First wait between attempts; doubles each time (with jitter), capped by ``max_backoff_s``.
        max_backoff_s: Longest wait between attempts.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r} (example: http://127.0.0.1:8000)")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.attempts = 0  # total HTTP attempts made (for tests and logs)

    def __repr__(self) -> str:
        return f"ScorerClient({self.url!r}, timeout_s={self.timeout_s}, retries={self.retries})"

    # -- transport --------------------------------------------------------------------------------

    def _once(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        self.attempts += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers or {}), error.read()

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        """Send one JSON request with retries; return the decoded JSON answer.

        Raises:
            ServiceError: A non-retryable refusal (its message is the service's, naming the field),
                or every attempt failed (the message says what to try).
        """
        body = None if payload is None else json.dumps(payload).encode()
        where = self.url + path
        last = ""
        for attempt in range(self.retries + 1):
            wait = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            try:
                status, headers, raw = self._once(method, path, body)
            except TimeoutError as error:
                last = f"no answer within timeout_s={self.timeout_s} s ({error})"
                status = 0
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError):
                    last = f"no answer within timeout_s={self.timeout_s} s"
                else:
                    last = f"cannot reach the scoring service at {where} ({type(reason).__name__}: {reason})"
                status = 0
            else:
                if 200 <= status < 300:
                    return json.loads(raw)
                message = _error_text(raw)
                if status not in RETRY_STATUSES:
                    raise ServiceError(_advice(status, where, message), status)
                last = f"HTTP {status} from {where}: {message}"
                retry_after = headers.get("Retry-After") or headers.get("retry-after")
                if retry_after and retry_after.isdigit():
                    wait = max(wait, float(retry_after))
            if attempt < self.retries:
                time.sleep(wait)
        raise ServiceError(
            f"{last}; gave up after {self.retries + 1} attempts. Check that `segzero serve` is running there "
            "(GET /health), raise timeout_s or retries, or add scorer replicas (segzero serve --replicas N)",
            status if isinstance(status, int) else 0,
        )

    # -- API --------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: status, the env served, requests in flight, limits."""
        return self.request("GET", "/health")

    def score(self, items: Sequence[Mapping[str, str]], request_id: str | None = None) -> list[dict[str, Any]]:
        """Score ``[{"sample_id", "reply"}, ...]``; one result per item, in order.

        Each result holds ``reward``, ``terms``, ``iou``, ``intersection``, ``union``,
        ``parse_failure`` and ``parse_detail``.
        """
        payload = {
            "request_id": request_id or uuid.uuid4().hex,
            "items": [{"sample_id": str(i["sample_id"]), "reply": i["reply"]} for i in items],
        }
        return self.request("POST", "/score", payload)["results"]

    async def score_async(
        self, items: Sequence[Mapping[str, str]], request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`score` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.score, items, request_id)

    def segment_raw(self, requests: Sequence[Mapping[str, Any]], request_id: str | None = None) -> list[Any]:
        """``POST /segment`` with prepared entries; returns the encoded masks."""
        payload = {"request_id": request_id or uuid.uuid4().hex, "requests": list(requests)}
        return self.request("POST", "/segment", payload)["masks"]


def _error_text(raw: bytes) -> str:
    try:
        decoded = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:300].decode("utf-8", "replace")
    if isinstance(decoded, dict) and "error" in decoded:
        return str(decoded["error"])
    return str(decoded)[:300]


def _advice(status: int, where: str, message: str) -> str:
    if status == 401:
        return f"{where} refused the token ({message}); pass token= or set ${TOKEN_ENV} to the service's token"
    if status == 404 and "sample_id" not in message and "image_key" not in message:
        return f"{where} does not exist (HTTP 404); is this URL a `segzero serve` service?"
    return f"HTTP {status} from {where}: {message}"
