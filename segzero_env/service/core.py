"""What a scorer replica holds and does, without Ray: one env's dataset, segmenter and rewards.

:class:`ScoringCore` scores many requests in ONE pass of
:func:`segzero_env.envs.scoring.score_replies`: replies about the same sample share one
:class:`~segzero_env.envs.episode.Episode` object, so the segmenter sees all of that image's
prompts in one call (one encoder pass, one batched decode), exactly as the group vector env
does in process. Rewards therefore equal the in-process env's for the same sample and reply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segzero_env.envs.episode import Episode, make_episode
from segzero_env.envs.scoring import score_replies
from segzero_env.segmenters.base import SegmentRequest
from segzero_env.segmenters.cache import image_digest
from segzero_env.service.protocol import BadRequestError, ImagePrompts, ScoreItem, encode_masks, outcome_to_json


class ScoringCore:
    """An env's scoring state, shared by every request a replica serves.

    Args:
        env_id: Gymnasium id (``ReasonSeg-v0``, ``ReasonSegShapes-v0``, ...).
        env_kwargs: Keyword arguments for ``gym.make`` (dataset, split, data_root, segmenter,
            segmenter_kwargs, reward, image_size, ...). Fixed when the service starts: nothing in
            a request chooses a class, a module or a file.
        max_cached_samples: Prepared episodes kept (each holds its resized image).

    Attributes:
        env: The unwrapped :class:`~segzero_env.envs.reasonseg_env.ReasonSegEnv`.
        replies_scored: Replies scored so far.
        score_passes: Calls of :func:`score_replies` (one per batch).
    """

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None, max_cached_samples: int = 256) -> None:
        import gymnasium as gym

        import segzero_env  # noqa: F401 - registers the ids

        self.env = gym.make(env_id, **dict(env_kwargs or {})).unwrapped
        if self.env.multi_turn:
            raise ValueError("the scoring service scores single replies; start it with max_turns=1")
        self.env_id = env_id
        self.max_cached_samples = int(max_cached_samples)
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        self._known = set(self.env.dataset.sample_ids)
        self.replies_scored = 0
        self.score_passes = 0
        self.segment_passes = 0

    def describe(self) -> dict[str, Any]:
        """What this scorer serves: env id, dataset, split, size, segmenter, preset, image size."""
        env = self.env
        return {
            "env_id": self.env_id,
            "dataset": getattr(env.dataset, "name", type(env.dataset).__name__),
            "split": getattr(env.dataset, "split", None),
            "num_samples": len(env.dataset),
            "segmenter": getattr(env.segmenter, "name", type(env.segmenter).__name__),
            "reward_preset": env.preset.name,
            "reward_terms": list(env.preset.weights),
            "image_size": env.image_size,
        }

    def stats(self) -> dict[str, int]:
        """Counters: replies scored, scoring passes, and the segmenter's encoder / decoder calls."""
        segmenter = self.env.segmenter
        return {
            "replies_scored": self.replies_scored,
            "score_passes": self.score_passes,
            "segment_passes": self.segment_passes,
            "encode_calls": int(getattr(segmenter, "encode_calls", 0)),
            "decode_calls": int(getattr(segmenter, "decode_calls", 0)),
        }

    def check_sample_ids(self, sample_ids: Sequence[str], field: str = "items") -> None:
        """Raise :class:`BadRequestError` (404) naming the first unknown sample id."""
        for i, sample_id in enumerate(sample_ids):
            if sample_id not in self._known:
                raise BadRequestError(
                    f"{field}[{i}].sample_id {sample_id!r} is not in this service's dataset "
                    f"({self.describe()['dataset']} {self.describe()['split']}, {len(self._known)} samples); "
                    "check that the trainer and the service use the same dataset and split",
                    status=404,
                )

    def episode(self, sample_id: str) -> Episode:
        """The prepared episode of ``sample_id`` (one object per sample while it stays cached)."""
        episode = self._episodes.get(sample_id)
        if episode is None:
            env = self.env
            sample = env.dataset[env.dataset.index_of(sample_id)]
            episode = make_episode(sample, env.image_size, env.max_query_length)
            self._episodes[sample_id] = episode
            while len(self._episodes) > self.max_cached_samples:
                self._episodes.popitem(last=False)
        else:
            self._episodes.move_to_end(sample_id)
        return episode

    def score(self, requests: Sequence[Sequence[ScoreItem]]) -> list[list[dict[str, Any]]]:
        """Score every request's items in one pass; returns one result list per request.

        Sample ids must have been checked (:meth:`check_sample_ids`).
        """
        flat = [item for request in requests for item in request]
        episodes = [self.episode(item.sample_id) for item in flat]
        env = self.env
        outcomes = score_replies(
            episodes, [item.reply for item in flat], env.segmenter, env.preset, None, env.template.schema
        )
        self.replies_scored += len(flat)
        self.score_passes += 1
        results = [outcome_to_json(item.sample_id, o) for item, o in zip(flat, outcomes, strict=True)]
        out, start = [], 0
        for request in requests:
            out.append(results[start : start + len(request)])
            start += len(request)
        return out

    def resolve_image(self, entry: ImagePrompts, field: str) -> np.ndarray:
        """The pixels a ``/segment`` entry names: its upload, else the dataset sample ``image_key``.

        Raises:
            BadRequestError: 409 when the dataset's image for the key does not match ``image_digest``
                (the client then uploads the image), 404 when the key is unknown and nothing was uploaded.
        """
        if entry.image is not None:
            return entry.image
        if entry.image_key not in self._known:
            raise BadRequestError(f"{field}.image_key {entry.image_key!r} is not in this service's dataset", status=404)
        image = self.episode(entry.image_key).sample.image
        if entry.image_digest and entry.image_digest != image_digest(image):
            raise BadRequestError(
                f"{field}.image_key {entry.image_key!r} names a different image here (digest mismatch); "
                "send the pixels in image_png",
                status=409,
            )
        return image

    def segment_requests(self, entries: Sequence[ImagePrompts]) -> list[SegmentRequest]:
        """Resolve a ``/segment`` body's images (raises :class:`BadRequestError` before any work is queued)."""
        return [
            SegmentRequest(self.resolve_image(e, f"requests[{i}]"), e.prompts, e.image_key or None)
            for i, e in enumerate(entries)
        ]

    def segment(self, calls: Sequence[Sequence[SegmentRequest]]) -> list[list[dict[str, Any]]]:
        """Segment every call's requests in ONE ``segment_many`` call; masks bit-packed, one list per call.

        Requests naming the same image (same key and pixels) share one encoder pass in SAM2.
        """
        flat = [request for call in calls for request in call]
        masks = [encode_masks(m) for m in self.env.segmenter.segment_many(flat)]
        self.segment_passes += 1
        out, start = [], 0
        for call in calls:
            out.append(masks[start : start + len(call)])
            start += len(call)
        return out

    def close(self) -> None:
        """Release the segmenter."""
        self.env.close()
