"""Whether the Hugging Face hub can be reached, asked once per process with a short timeout.

Loading weights by hub id (a VLM, a SAM2 checkpoint) while the network is down would otherwise
spend up to minutes in the hub client's retries before failing. :func:`hub_unavailable_reason`
answers within about :data:`PROBE_TIMEOUT_S` seconds:

1. ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value: the hub is not used.
2. Otherwise one ``HEAD`` request goes to the endpoint (``$HF_ENDPOINT``, default
   ``https://huggingface.co``, through the usual proxy variables). Any HTTP answer, even an
   error status, means the hub can be reached. No answer (no DNS, connection refused, timeout):
   this process sets ``HF_HUB_OFFLINE=1`` for itself, so every later hub call (transformers,
   ``huggingface_hub``, ``datasets``) reads the local cache at once instead of retrying.

The answer is remembered per endpoint for the life of the process. Used by the model resolver
(:mod:`segzero_env.hf.weights`) and the SAM2 checkpoint resolver (:mod:`segzero_env.segmenters.weights`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
"""Seconds the one probe request may take before the hub counts as unreachable."""
DEFAULT_ENDPOINT = "https://huggingface.co"

_TRUE = ("1", "true", "yes", "on")
_lock = threading.Lock()
_probed: dict[str, str | None] = {}
"""endpoint -> ``None`` (reachable) or why it is not."""
_offline_reason: str | None = None
"""Why this module switched the process offline, once it has."""


def hub_endpoint() -> str:
    """The hub address in use: ``$HF_ENDPOINT`` without a trailing slash, else ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def probe_hub(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Send one ``HEAD`` request to ``endpoint``; ``None`` if anything answers, else why not.

    The request runs in a daemon thread that is waited on for ``timeout`` seconds, so a resolver
    that hangs (name lookups have no timeout of their own) cannot hold the caller longer.
    """
    outcome: list[str | None] = []

    def _ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except urllib.error.HTTPError:  # an HTTP status, even 4xx/5xx, means the server is there
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 - every other failure means "not reachable from here"
            cause = getattr(err, "reason", err)
            outcome.append(f"{type(cause).__name__}: {str(cause).splitlines()[0][:120] if str(cause) else 'no answer'}")

    worker = threading.Thread(target=_ask, name="segzero-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def go_offline(reason: str) -> None:
    """Set ``HF_HUB_OFFLINE=1`` for this process, including in an already imported ``huggingface_hub``."""
    global _offline_reason
    _offline_reason = reason
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # it reads the variable once, at import
        constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True


def hub_unavailable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` if the hub may be used, else a short reason (offline setting, or the failed probe).

    The first call per endpoint probes it (see the module docstring); a failed probe switches the
    process offline and logs one warning.
    """
    if hub_offline():
        return _offline_reason or "HF_HUB_OFFLINE is set"
    endpoint = hub_endpoint()
    with _lock:
        if endpoint not in _probed:
            start = time.perf_counter()
            _probed[endpoint] = probe_hub(endpoint, timeout)
            waited = time.perf_counter() - start
            if _probed[endpoint] is not None:
                reason = f"unreachable ({_probed[endpoint]}, probed in {waited:.1f} s)"
                go_offline(f"{reason}; HF_HUB_OFFLINE=1 set for this process")
                logger.warning("Hugging Face hub %s %s; working offline (local files, hub cache)", endpoint, reason)
        failure = _probed[endpoint]
    if failure is None:
        return None
    return _offline_reason or f"unreachable ({failure})"


def hub_available(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub may be used for downloads (see :func:`hub_unavailable_reason`)."""
    return hub_unavailable_reason(timeout) is None
