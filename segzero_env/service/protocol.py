"""The scoring service's wire format: JSON bodies in, JSON bodies out, checked field by field.

Pure Python (no Ray, no web framework), so the server, the clients and the tests share one
definition. Bodies are parsed with :func:`json.loads` only: nothing in a request is ever
unpickled, imported or evaluated. Every rejection is a :class:`BadRequestError` whose message names
the offending field (``items[3].reply``) and says what would be accepted.

``POST /score``::

    {"request_id": "optional, at most 128 characters",
     "items": [{"sample_id": "shapes-train-0", "reply": "<think>..</think><answer>..</answer>"}, ...]}

answers ``{"request_id": ..., "results": [{"sample_id", "reward", "terms", "iou", "intersection",
"union", "parse_failure", "parse_detail"}, ...]}`` in the order of ``items``. A ``request_id`` names
one body: a retry resends the same body with the same id, and is answered from the first
attempt's result (or joins it while it runs) instead of being scored again.

``POST /segment`` (the ``remote`` segmenter)::

    {"request_id": "...",
     "requests": [{"image_key": "shapes-train-0", "image_digest": "<BLAKE2b hex of the pixels>",
                   "image_png": "<base64 PNG, only when the service does not know the image>",
                   "prompts": [{"box": [x1, y1, x2, y2] or null, "points": [[x, y], ...],
                                "labels": [1, 0, ...]}, ...]}, ...]}

answers ``{"request_id": ..., "masks": [{"shape": [B, H, W], "bits": "<base64 of numpy.packbits>"}, ...]}``.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_env.types import Prompt


@dataclass(frozen=True)
class Limits:
    """Size caps the service enforces before any work is done.

    Attributes:
        max_body_bytes: Largest request body (413 above it).
        max_items: Most replies (``/score``) or images (``/segment``) in one request.
        max_reply_chars: Longest reply; a longer one is rejected (422) rather than truncated,
            since a truncated reply would be scored as a different answer.
        max_prompts: Most prompts per image in ``/segment``.
        max_id_chars: Longest ``request_id`` / ``sample_id`` / ``image_key``.
        max_image_pixels: Largest uploaded image (``H * W``).
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 1024
    max_reply_chars: int = 32_768
    max_prompts: int = 64
    max_id_chars: int = 256
    max_image_pixels: int = 4096 * 4096


class BadRequestError(ValueError):
    """A request the service refuses; ``status`` is the HTTP code, the message names the field."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ScoreItem:
    """One reply to score against one sample."""

    sample_id: str
    reply: str


@dataclass(frozen=True)
class ImagePrompts:
    """One image's prompts in a ``/segment`` request (``image`` set only when uploaded)."""

    image_key: str
    image_digest: str
    image: np.ndarray | None
    prompts: tuple[Prompt, ...]


def load_body(raw: bytes, limits: Limits) -> dict[str, Any]:
    """Decode a request body as a JSON object (never anything else).

    >>> load_body(b'{"items": []}', Limits())
    {'items': []}
    >>> load_body(b"[1]", Limits())
    Traceback (most recent call last):
    ...
    segzero_env.service.protocol.BadRequestError: the body must be a JSON object, got list
    """
    if len(raw) > limits.max_body_bytes:
        raise BadRequestError(
            f"the body is {len(raw)} bytes, above the limit of {limits.max_body_bytes}; send fewer items per request",
            status=413,
        )
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"the body is not JSON ({error}); send a JSON object", status=400) from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the body must be a JSON object, got {type(body).__name__}", status=400)
    return body


def _string(value: Any, field: str, max_chars: int, status: int = 422) -> str:
    if not isinstance(value, str):
        raise BadRequestError(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise BadRequestError(f"{field} has {len(value)} characters, above the limit of {max_chars}", status=status)
    return value


def _list(value: Any, field: str, max_len: int) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestError(f"{field} must be a list, got {type(value).__name__}")
    if not value:
        raise BadRequestError(f"{field} is empty; send at least one entry")
    if len(value) > max_len:
        raise BadRequestError(f"{field} has {len(value)} entries, above the limit of {max_len}; split the request", 413)
    return value


def _only(entry: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise BadRequestError(
            f"{where} has unknown field {unknown[0]!r}; allowed: {', '.join(allowed)} "
            "(the env, its segmenter and rewards are fixed when the service starts)"
        )


def request_id_of(body: dict[str, Any], limits: Limits) -> str | None:
    """The body's ``request_id`` (``None`` when absent)."""
    value = body.get("request_id")
    if value is None:
        return None
    value = _string(value, "request_id", limits.max_id_chars)
    if not value:
        raise BadRequestError("request_id is empty; leave it out or send a unique string")
    return value


def parse_score_body(body: dict[str, Any], limits: Limits) -> list[ScoreItem]:
    """Validate a ``/score`` body and return its items.

    >>> parse_score_body({"items": [{"sample_id": "a", "reply": "r"}]}, Limits())
    [ScoreItem(sample_id='a', reply='r')]
    >>> parse_score_body({"items": [{"sample_id": "a"}]}, Limits())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    segzero_env.service.protocol.BadRequestError: items[0].reply is missing; each item is ...
    """
    if "items" not in body:
        raise BadRequestError('items is missing; send {"items": [{"sample_id": ..., "reply": ...}, ...]}')
    _only(body, ("request_id", "items"), "the body")
    items = []
    for i, entry in enumerate(_list(body["items"], "items", limits.max_items)):
        if not isinstance(entry, dict):
            raise BadRequestError(f"items[{i}] must be an object, got {type(entry).__name__}")
        _only(entry, ("sample_id", "reply"), f"items[{i}]")
        for key in ("sample_id", "reply"):
            if key not in entry:
                raise BadRequestError(f'items[{i}].{key} is missing; each item is {{"sample_id": str, "reply": str}}')
        sample_id = _string(entry["sample_id"], f"items[{i}].sample_id", limits.max_id_chars)
        reply = _string(entry["reply"], f"items[{i}].reply", limits.max_reply_chars, status=413)
        items.append(ScoreItem(sample_id, reply))
    return items


def _numbers(value: Any, field: str, shape: tuple[int, ...] | None) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequestError(f"{field} must hold numbers, got {str(value)[:60]!r}") from None
    if shape is not None and array.shape != shape:
        raise BadRequestError(f"{field} must have shape {list(shape)}, got {list(array.shape)}")
    return array


def _prompt(entry: Any, field: str) -> Prompt:
    if not isinstance(entry, dict):
        raise BadRequestError(f"{field} must be an object, got {type(entry).__name__}")
    _only(entry, ("box", "points", "labels"), field)
    box = entry.get("box")
    if box is not None:
        box = tuple(float(v) for v in _numbers(box, f"{field}.box", (4,)))
    points = _numbers(entry.get("points", []), f"{field}.points", None).reshape(-1, 2) if entry.get("points") else None
    points = np.zeros((0, 2), np.float32) if points is None else points.astype(np.float32)
    labels = _numbers(entry.get("labels", [1] * len(points)), f"{field}.labels", (len(points),)).astype(np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise BadRequestError(f"{field}.labels must be 0 (negative) or 1 (positive)")
    return Prompt(box=box, points=points, point_labels=labels)


def _png(text: Any, field: str, limits: Limits) -> np.ndarray:
    import cv2

    text = _string(text, field, limits.max_body_bytes, status=413)
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise BadRequestError(f"{field} is not base64") from None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise BadRequestError(f"{field} is not a PNG or JPEG image")
    pixels = decoded.shape[0] * decoded.shape[1]
    if pixels > limits.max_image_pixels:
        raise BadRequestError(f"{field} has {pixels} pixels, above the limit of {limits.max_image_pixels}", 413)
    return np.ascontiguousarray(decoded[:, :, ::-1])


def parse_segment_body(body: dict[str, Any], limits: Limits) -> list[ImagePrompts]:
    """Validate a ``/segment`` body and return one :class:`ImagePrompts` per image."""
    if "requests" not in body:
        raise BadRequestError('requests is missing; send {"requests": [{"image_key": ..., "prompts": [...]}, ...]}')
    _only(body, ("request_id", "requests"), "the body")
    out = []
    for i, entry in enumerate(_list(body["requests"], "requests", limits.max_items)):
        field = f"requests[{i}]"
        if not isinstance(entry, dict):
            raise BadRequestError(f"{field} must be an object, got {type(entry).__name__}")
        _only(entry, ("image_key", "image_digest", "image_png", "prompts"), field)
        key = _string(entry.get("image_key", ""), f"{field}.image_key", limits.max_id_chars)
        digest = _string(entry.get("image_digest", ""), f"{field}.image_digest", 64)
        image = None if entry.get("image_png") is None else _png(entry["image_png"], f"{field}.image_png", limits)
        if image is None and not key:
            raise BadRequestError(f"{field} names no image; send image_key (a sample id) or image_png")
        raw_prompts = entry.get("prompts")
        if not isinstance(raw_prompts, list):
            raise BadRequestError(f"{field}.prompts must be a list, got {type(raw_prompts).__name__}")
        if len(raw_prompts) > limits.max_prompts:
            raise BadRequestError(f"{field}.prompts has {len(raw_prompts)} entries, above {limits.max_prompts}", 413)
        prompts = tuple(_prompt(p, f"{field}.prompts[{j}]") for j, p in enumerate(raw_prompts))
        out.append(ImagePrompts(key, digest, image, prompts))
    return out


def prompt_to_json(prompt: Prompt) -> dict[str, Any]:
    """A prompt as ``/segment`` expects it (``mask_input`` is not sent)."""
    return {
        "box": None if prompt.box is None else [float(v) for v in prompt.box],
        "points": np.asarray(prompt.points, dtype=np.float64).reshape(-1, 2).tolist(),
        "labels": np.asarray(prompt.point_labels).astype(int).reshape(-1).tolist(),
    }


def encode_masks(masks: np.ndarray) -> dict[str, Any]:
    """``B x H x W`` bool masks as ``{"shape", "bits"}`` (bit-packed, base64).

    >>> m = np.array([[[True, False], [False, True]]])
    >>> bool((decode_masks(encode_masks(m)) == m).all())
    True
    """
    masks = np.asarray(masks, dtype=bool)
    return {"shape": list(masks.shape), "bits": base64.b64encode(np.packbits(masks.reshape(-1))).decode("ascii")}


def decode_masks(payload: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_masks`."""
    shape = tuple(int(v) for v in payload["shape"])
    count = math.prod(shape)
    bits = np.unpackbits(np.frombuffer(base64.b64decode(payload["bits"]), np.uint8), count=count)
    return bits.astype(bool).reshape(shape)


def outcome_to_json(sample_id: str, outcome: Any) -> dict[str, Any]:
    """One scored reply (:class:`~segzero_env.envs.scoring.Outcome`) as a ``/score`` result."""
    return {
        "sample_id": sample_id,
        "reward": float(outcome.reward),
        "terms": {k: float(v) for k, v in outcome.terms.items()},
        "iou": float(outcome.iou),
        "intersection": int(outcome.intersection),
        "union": int(outcome.union),
        "parse_failure": None if outcome.parsed.failure is None else outcome.parsed.failure.value,
        "parse_detail": outcome.parsed.detail,
    }
