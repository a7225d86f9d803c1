"""Keep secrets (API keys, tokens) out of run records and messages.

A setting is secret when its name says so (``api_key``, ``hf_token``, ``password``, ...). Run
records store ``"<redacted>"`` in its place, resume checks leave it out (a rotated key is not a
different run), and messages replace the secret's text wherever it appears.

>>> redact_settings({"model": "m", "api_key": "sk-1", "max_tokens": 8, "extra": {"hf_token": "t"}})
{'model': 'm', 'api_key': '<redacted>', 'max_tokens': 8, 'extra': {'hf_token': '<redacted>'}}
>>> without_secrets({"model": "m", "api_key": "sk-1"})
{'model': 'm'}
>>> redact_text("HTTP 401: bad key sk-12345", ["sk-12345"])
'HTTP 401: bad key <redacted>'
>>> redact_url("http://user:pw@host:8000/v1")
'http://user:<redacted>@host:8000/v1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|authorization|credentials?)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a setting called ``name`` holds a secret (``api_key``, ``hf_token``; not ``max_tokens``)."""
    return bool(_SECRET_NAME.search(str(name)))


def redact_settings(value: Any) -> Any:
    """A copy of nested dicts and lists with every non-empty secret value replaced by ``"<redacted>"``."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if is_secret_name(k) and v not in (None, "") else redact_settings(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_settings(v) for v in value]
    return value


def without_secrets(value: Any) -> Any:
    """A copy of nested dicts and lists with every secret setting left out (for comparing runs)."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``"<redacted>"``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``"<redacted>"``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
