"""``openai``: any OpenAI-compatible chat-completions server (vLLM, SGLang, ...), over plain HTTP."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import time
import urllib.error
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segzero_env.policies.base import PolicyBase, check_batch, frame_size, prompt_text
from segzero_env.policies.http_post import post
from segzero_env.policies.replies import FRAMES, reply_in_env_frame
from segzero_env.redaction import redact_text, redact_url

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: overload, rate limits and transient server errors."""


class ServerUnreachableError(ConnectionError):
    """The chat-completions server could not be reached after every retry."""


class _RetryableAnswerError(Exception):
    """An answer worth asking again for: an overload status, or a body that is not JSON."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def image_data_url(image: np.ndarray, image_format: str = "png", jpeg_quality: int = 95) -> str:
    """Encode an ``H x W x 3`` uint8 image as a base64 ``data:`` URL (PNG is lossless, JPEG smaller).

    >>> image_data_url(np.zeros((2, 2, 3), np.uint8))[:22]
    'data:image/png;base64,'
    """
    from PIL import Image

    fmt = image_format.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
    buffer = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    if fmt == "png":
        pil.save(buffer, format="PNG")
        mime = "image/png"
    else:
        pil.save(buffer, format="JPEG", quality=jpeg_quality)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class OpenAIPolicy(PolicyBase):
    """Ask an OpenAI-compatible ``/chat/completions`` endpoint, one request per observation, in parallel.

    The user turn holds the image (a base64 data URL) and then the env's prompt, after a system
    turn. Requests that fail with a connection error, a timeout, HTTP 408/409/429/5xx, or a body
    that is not JSON (a proxy's HTML page) are retried with exponential backoff
    (``backoff * 2**attempt`` seconds, capped at ``max_backoff``, or the server's ``Retry-After``);
    other HTTP errors raise at once with the server's message.

    Args:
        model: Model name the server serves (``--served-model-name`` in vLLM).
        base_url: Server root ending in ``/v1`` (``/chat/completions`` is appended).
        api_key: Bearer token. Leave it ``None`` to read the environment variable ``api_key_env``
            (else none is sent): a key passed here is used, but never written to run records and
            replaced by ``<redacted>`` in every message.
        api_key_env: The environment variable holding the key (default ``OPENAI_API_KEY``).
        max_tokens: Generation budget per reply.
        temperature: Sampling temperature (0 = greedy).
        top_p: Nucleus sampling mass.
        timeout: Seconds one socket operation (connecting, one read) may wait.
        request_timeout: Seconds one request may take in all (connect, send, generate, read),
            however slowly the server sends its answer; a request that runs out is retried.
        max_retries: Retries after the first attempt.
        backoff: First retry delay in seconds.
        max_backoff: Longest delay between retries.
        concurrency: Requests in flight at once.
        image_format: ``"png"`` or ``"jpeg"``.
        system_prompt: System turn text (``None`` = Qwen's ``"You are a helpful assistant."``, ``""`` = none).
        coordinate_frame: ``"absolute"`` (Qwen2.5-VL) or ``"relative-1000"`` (Qwen2-VL, Qwen3-VL).
        extra_body: Extra top-level request fields (``{"top_k": 1}``, ``{"seed": 0}``, ...).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        timeout: float = 120.0,
        request_timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        image_format: str = "png",
        system_prompt: str | None = None,
        coordinate_frame: str = "absolute",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        from segzero_env.hf.chat import SYSTEM_PROMPT

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not (timeout > 0 and request_timeout > 0):
            raise ValueError(f"timeout and request_timeout must be > 0 seconds, got {timeout} and {request_timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if coordinate_frame not in FRAMES:
            raise ValueError(f"coordinate_frame must be one of {', '.join(FRAMES)}, got {coordinate_frame!r}")
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.shown_url = redact_url(self.url)
        self.timeout = float(timeout)
        self.request_timeout = float(request_timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.concurrency = int(concurrency)
        self.image_format = image_format
        self.system_prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.coordinate_frame = coordinate_frame
        self.sampling: dict[str, Any] = {
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "top_p": float(top_p),
        }
        self.extra_body = dict(extra_body or {})
        self.retries = 0
        self.completion_tokens = 0
        self._pool: ThreadPoolExecutor | None = None

    def request_body(self, observation: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        """Build the JSON body for one observation."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        image_url = image_data_url(observation["image"], self.image_format)
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": prompt_text(observation, info)},
                ],
            }
        )
        return {"model": self.model, "messages": messages, **self.sampling, **self.extra_body}

    def act(self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]) -> list[str]:
        """Send every observation's request (``concurrency`` at a time) and return the replies in order."""
        check_batch(observations, infos)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="segzero-openai")
        bodies = [self.request_body(obs, info) for obs, info in zip(observations, infos, strict=True)]
        texts = list(self._pool.map(self._complete, bodies))
        return [
            reply_in_env_frame(text, self.coordinate_frame, frame_size(obs, info))
            for text, obs, info in zip(texts, observations, infos, strict=True)
        ]

    def _post(self, payload: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        answer = post(self.url, payload, headers, self.timeout, self.request_timeout)
        if not 200 <= answer.status < 300:
            detail = self._redact(answer.body[:500].decode("utf-8", "replace"))
            if answer.status not in RETRY_STATUS:
                raise RuntimeError(f"{self.shown_url} answered HTTP {answer.status}: {detail}")
            raise _RetryableAnswerError(f"HTTP {answer.status}: {detail}", answer.retry_after)
        try:
            return json.loads(answer.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            start = self._redact(answer.body[:120].decode("utf-8", "replace"))
            raise _RetryableAnswerError(
                f"{self.shown_url} answered HTTP {answer.status} with {answer.content_type or 'no content type'}, "
                f"not JSON (it starts {start!r}); is base_url the server's /v1 root, not a web page or proxy?"
            ) from None

    def _complete(self, body: dict[str, Any]) -> str:
        payload = json.dumps(body).encode("utf-8")
        last_error: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            delay = min(self.backoff * 2**attempt, self.max_backoff)
            try:
                response = self._post(payload)
                break
            except _RetryableAnswerError as err:
                last_error = err
                if err.retry_after is not None:
                    delay = min(err.retry_after, self.max_backoff)
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as err:
                last_error = err
            if attempt == self.max_retries:
                raise ServerUnreachableError(
                    f"no usable answer from the chat-completions server at {self.shown_url} after {attempt + 1} "
                    f"attempts (last error: {self._redact(str(last_error))}); check that the server is running and "
                    "base_url is right"
                ) from last_error
            self.retries += 1
            time.sleep(delay)
        try:
            choice = response["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            shown = self._redact(str(response)[:300])
            raise RuntimeError(f"{self.shown_url} returned no choices[0].message.content: {shown}") from err
        usage = response.get("usage") or {}
        self.completion_tokens += int(usage.get("completion_tokens") or 0)
        return text if isinstance(text, str) else ""

    def _redact(self, text: str) -> str:
        return redact_text(text, [self.api_key])

    def __repr__(self) -> str:
        return f"OpenAIPolicy(model={self.model!r}, url={self.shown_url!r})"

    def stats(self) -> dict[str, Any]:
        """Retry and token counters."""
        return {"retries": self.retries, "completion_tokens": self.completion_tokens}

    def close(self) -> None:
        """Shut the request thread pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
