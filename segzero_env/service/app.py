"""The scoring service on Ray Serve: a scorer deployment behind a small HTTP ingress.

- ``SegZeroScorer`` (``num_replicas``, ``num_gpus`` / ``num_cpus`` per replica) holds one env's
  dataset and segmenter (:class:`~segzero_env.service.core.ScoringCore`). Its ``score`` and
  ``segment`` methods go through ``@serve.batch``: calls that arrive together are scored in one
  pass, so the G replies of an image, sent by one trainer or by several, share one encoder pass
  and one batched decode. Calls carry the sample id as Serve's multiplexed model id: Serve sends
  a sample's requests to the replica that already holds it (and its cached image embedding), and
  splits batches by sample. The routing is Serve's best effort: replicas report what they hold
  every 0.1 s, so requests in the first moments after a sample is first seen, or while its
  replica is busy, may go to another replica, which then holds it too.
- ``SegZeroIngress`` (FastAPI) checks the bearer token, caps and validates bodies (JSON only),
  bounds the requests in flight (429 with ``Retry-After`` beyond), makes retries idempotent by
  ``request_id`` (a completed id is answered from memory, an id in flight is joined, a failed one
  runs again), splits requests by sample id, and serves ``/health`` and ``/metrics``.

Ray-native callers skip HTTP: :func:`scorer_handle` and :func:`score_with_handle`.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at runtime.

import asyncio
import hmac
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from segzero_env.service.config import ServiceConfig
from segzero_env.service.protocol import (
    BadRequestError,
    Limits,
    ScoreItem,
    load_body,
    parse_score_body,
    parse_segment_body,
    request_id_of,
)

APP_NAME = "segzero"
SCORER_NAME = "SegZeroScorer"
INGRESS_NAME = "SegZeroIngress"


@serve.deployment(name=SCORER_NAME)
class Scorer:
    """A replica holding one env; ``score`` / ``segment`` calls are gathered by ``@serve.batch``."""

    def __init__(self, config: ServiceConfig) -> None:
        from segzero_env.service.core import ScoringCore

        self.core = ScoringCore(config.env_id, config.env_kwargs, config.max_cached_samples)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self._lock = asyncio.Lock()  # one segmenter, so one pass at a time across both batchers
        for batched in (self._score_batch, self._segment_batch):
            batched.set_max_batch_size(config.max_batch_size)
            batched.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    def describe(self) -> dict[str, Any]:
        """The env this replica serves (see :meth:`ScoringCore.describe`)."""
        return self.core.describe()

    def _reply(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "replica": self.replica, "stats": self.core.stats()}

    @serve.multiplexed(max_num_models_per_replica=64)
    async def _hold_sample(self, sample_id: str) -> Any:
        # Registers the sample with Serve's router, which then prefers this replica for it.
        return self.core.episode(sample_id)

    async def score(self, items: Sequence[dict[str, str] | ScoreItem]) -> dict[str, Any]:
        """Score ``[{"sample_id", "reply"}, ...]``: ``{"results": [...]}`` or ``{"error", "status"}``."""
        try:
            parsed = [i if isinstance(i, ScoreItem) else ScoreItem(str(i["sample_id"]), str(i["reply"])) for i in items]
            self.core.check_sample_ids([i.sample_id for i in parsed])
        except BadRequestError as error:
            return self._reply({"error": str(error), "status": error.status})
        except (KeyError, TypeError) as error:
            return self._reply({"error": f"items must be {{'sample_id', 'reply'}} objects ({error})", "status": 422})
        sample_id = serve.get_multiplexed_model_id()
        if sample_id:
            await self._hold_sample(sample_id)
        return self._reply({"results": await self._score_batch(parsed)})

    async def segment(self, body: dict[str, Any], limits: Limits) -> dict[str, Any]:
        """Segment a validated ``/segment`` body: ``{"masks": [...]}`` or ``{"error", "status"}``."""
        try:
            requests = self.core.segment_requests(parse_segment_body(body, limits))
        except BadRequestError as error:
            return self._reply({"error": str(error), "status": error.status})
        sample_id = serve.get_multiplexed_model_id()
        if sample_id:
            await self._hold_sample(sample_id)
        return self._reply({"masks": await self._segment_batch(requests)})

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.01)
    async def _score_batch(self, calls: list[list[ScoreItem]]) -> list[list[dict[str, Any]]]:
        async with self._lock:
            return await asyncio.to_thread(self.core.score, calls)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.01)
    async def _segment_batch(self, calls: list[list[Any]]) -> list[list[dict[str, Any]]]:
        async with self._lock:
            return await asyncio.to_thread(self.core.segment, calls)


app = FastAPI(title="segzero scoring service", docs_url=None, redoc_url=None, openapi_url=None)


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class _Counters:
    """The ingress's Prometheus counters (text exposition format, written by hand)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.replies = 0
        self.replayed = 0
        self.joined = 0
        self.seconds_sum = 0.0
        self.seconds_count = 0
        self.replica_stats: dict[str, dict[str, int]] = {}

    def render(self, in_flight: int, limit: int) -> str:
        lines = [
            "# HELP segzero_requests_total HTTP requests by endpoint and status.",
            "# TYPE segzero_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            lines.append(f'segzero_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
        gauges = {
            "segzero_requests_in_flight": (in_flight, "gauge", "Requests being scored now."),
            "segzero_queue_limit": (limit, "gauge", "Requests in flight beyond which 429 is answered."),
            "segzero_replies_scored_total": (self.replies, "counter", "Replies scored (replays excluded)."),
            "segzero_replayed_total": (self.replayed, "counter", "Retries answered from a completed request id."),
            "segzero_joined_total": (self.joined, "counter", "Retries that joined a request id in flight."),
            "segzero_request_seconds_sum": (self.seconds_sum, "counter", "Time spent scoring, seconds."),
            "segzero_request_seconds_count": (self.seconds_count, "counter", "Requests timed."),
        }
        for name, (value, kind, text) in gauges.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        keys = sorted({k for stats in self.replica_stats.values() for k in stats})
        for key in keys:
            name = f"segzero_scorer_{key}_total"
            lines += [f"# HELP {name} Scorer replica counter {key} (last report).", f"# TYPE {name} counter"]
            for replica, stats in sorted(self.replica_stats.items()):
                lines.append(f'{name}{{replica="{replica}"}} {stats.get(key, 0)}')
        return "\n".join(lines) + "\n"


@serve.deployment(name=INGRESS_NAME)
@serve.ingress(app)
class Ingress:
    """HTTP front: authentication, caps, validation, the bounded queue, idempotent request ids."""

    def __init__(self, scorer: DeploymentHandle, config: ServiceConfig) -> None:
        self.scorer = scorer
        self.config = config
        self.done: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.inflight: dict[str, asyncio.Task] = {}
        self.counters = _Counters()
        self._description: dict[str, Any] | None = None
        self._anonymous = 0  # requests in flight without a request_id

    # -- plumbing ---------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if not self.config.token:
            return True
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {self.config.token}".encode())

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadRequestError(f"the body is {declared} bytes, above the limit of {limit}; send fewer items", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequestError(f"the body is above the limit of {limit} bytes; send fewer items", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def _remember(self, key: str, payload: dict[str, Any]) -> None:
        self.done[key] = payload
        while len(self.done) > self.config.idempotency_cache:
            self.done.popitem(last=False)

    async def _handle(self, endpoint: str, request: Request, work: Any, remember: bool = True) -> JSONResponse:
        """Shared path of ``/score`` and ``/segment``: auth, body, replay, queue bound, failures.

        ``remember``: keep completed answers for replays (``/score``). ``/segment`` answers are masks,
        too large to keep; a retried id joins the attempt in flight, and a late one segments again.
        """
        response = await self._handle_inner(endpoint, request, work, remember)
        self.counters.requests[(endpoint, response.status_code)] += 1
        return response

    async def _handle_inner(self, endpoint: str, request: Request, work: Any, remember: bool) -> JSONResponse:
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token; send the header 'Authorization: Bearer <token>'")
        limits = self.config.limits
        try:
            body = load_body(await self._read_body(request), limits)
            request_id = request_id_of(body, limits)
            job = work(body)  # validates the body; returns a coroutine doing the work
        except BadRequestError as error:
            return _error(error.status, str(error))
        key = None if request_id is None else f"{endpoint}/{request_id}"  # ids are per endpoint
        if key is not None and key in self.done:
            job.close()
            self.counters.replayed += 1
            return JSONResponse(self.done[key], headers={"X-Segzero-Replayed": "1"})
        task = self.inflight.get(key) if key is not None else None
        if task is not None:
            job.close()
            self.counters.joined += 1
        else:
            if len(self.inflight) + self._anonymous >= self.config.max_queued_requests:
                job.close()
                return _error(
                    429,
                    f"the service has {self.config.max_queued_requests} requests in flight; retry after "
                    f"{self.config.retry_after_s} s (the Retry-After header)",
                    retry_after=self.config.retry_after_s,
                )
            task = asyncio.ensure_future(self._timed(job, request_id, key, remember))
            if key is not None:
                self.inflight[key] = task
            else:
                self._anonymous += 1
                task.add_done_callback(self._anonymous_done)
        try:
            payload = await asyncio.shield(task)
        except BadRequestError as error:
            return _error(error.status, str(error))
        except Exception as error:  # noqa: BLE001 - a replica died or failed: the client retries
            return _error(
                503,
                f"scoring failed on a replica ({type(error).__name__}: {str(error)[:200]}); retry the same "
                f"request_id after {self.config.retry_after_s} s: completed work is never scored twice",
                retry_after=self.config.retry_after_s,
            )
        return JSONResponse(payload)

    def _anonymous_done(self, _task: asyncio.Task) -> None:
        self._anonymous -= 1

    async def _timed(self, job: Any, request_id: str | None, key: str | None, remember: bool) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            payload = await job
            payload["request_id"] = request_id
            if key is not None and remember:
                self._remember(key, payload)
            return payload
        finally:
            if key is not None:
                self.inflight.pop(key, None)
            self.counters.seconds_sum += time.perf_counter() - start
            self.counters.seconds_count += 1

    def _note(self, response: dict[str, Any]) -> dict[str, Any]:
        if "replica" in response:
            self.counters.replica_stats[response["replica"]] = response.get("stats", {})
        if "error" in response:
            raise BadRequestError(response["error"], int(response.get("status", 422)))
        return response

    # -- work -------------------------------------------------------------------------------------

    def _score_job(self, body: dict[str, Any]) -> Any:
        items = parse_score_body(body, self.config.limits)

        async def run() -> dict[str, Any]:
            groups: dict[str, list[int]] = defaultdict(list)
            for i, item in enumerate(items):
                groups[item.sample_id].append(i)
            calls = [
                self.scorer.options(multiplexed_model_id=sample_id).score.remote(
                    [{"sample_id": sample_id, "reply": items[i].reply} for i in members]
                )
                for sample_id, members in groups.items()
            ]
            results: list[Any] = [None] * len(items)
            for members, response in zip(groups.values(), await asyncio.gather(*calls), strict=True):
                for i, result in zip(members, self._note(response)["results"], strict=True):
                    results[i] = result
            self.counters.replies += len(items)
            return {"results": results}

        return run()

    def _segment_job(self, body: dict[str, Any]) -> Any:
        entries = parse_segment_body(body, self.config.limits)  # validated here, parsed again by the replica
        key = entries[0].image_key

        async def run() -> dict[str, Any]:
            handle = self.scorer.options(multiplexed_model_id=key) if key else self.scorer
            response = self._note(await handle.segment.remote(body, self.config.limits))
            return {"masks": response["masks"]}

        return run()

    # -- routes -----------------------------------------------------------------------------------

    @app.post("/score")
    async def score(self, request: Request) -> JSONResponse:
        """Score ``{"request_id", "items": [{"sample_id", "reply"}]}``."""
        return await self._handle("score", request, self._score_job)

    @app.post("/segment")
    async def segment(self, request: Request) -> JSONResponse:
        """Segment ``{"request_id", "requests": [{"image_key", "image_digest", "prompts"}]}``."""
        return await self._handle("segment", request, self._segment_job, remember=False)

    @app.get("/health")
    async def health(self, request: Request) -> JSONResponse:
        """``{"status": "ok", "env": {...}, "in_flight": n}``; the env comes from a scorer replica."""
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token; send the header 'Authorization: Bearer <token>'")
        if self._description is None:
            self._description = await self.scorer.describe.remote()
        return JSONResponse(
            {
                "status": "ok",
                "env": self._description,
                "in_flight": len(self.inflight) + self._anonymous,
                "limits": asdict(self.config.limits),
            }
        )

    @app.get("/metrics")
    async def metrics(self) -> PlainTextResponse:
        """Prometheus text format: requests by status, replies scored, queue, scorer encoder calls."""
        text = self.counters.render(len(self.inflight) + self._anonymous, self.config.max_queued_requests)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def build_app(config: ServiceConfig) -> Any:
    """The Serve application graph (ingress bound to the scorer) for ``serve.run``."""
    scorer = Scorer.options(
        num_replicas=config.replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        ray_actor_options={"num_gpus": config.num_gpus, "num_cpus": config.num_cpus},
    ).bind(config)
    ingress = Ingress.options(max_ongoing_requests=config.max_queued_requests + 64, ray_actor_options={"num_cpus": 0})
    return ingress.bind(scorer, config)


def start(config: ServiceConfig, ray_address: str | None = None, **ray_init: Any) -> DeploymentHandle:
    """Start Ray (or join ``ray_address``), Serve's HTTP proxy on ``config.host:config.port``, and the app.

    Returns:
        The ingress handle (``serve.run``'s); :func:`scorer_handle` gives the scorer's.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, **ray_init)
    serve.start(http_options={"host": config.host, "port": config.port})
    return serve.run(build_app(config), name=APP_NAME, route_prefix="/")


def scorer_handle(app_name: str = APP_NAME) -> DeploymentHandle:
    """A handle on the running scorer deployment, for callers inside the Ray cluster."""
    return serve.get_deployment_handle(SCORER_NAME, app_name=app_name)


async def score_with_handle(handle: DeploymentHandle, items: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Score ``[{"sample_id", "reply"}, ...]`` through a scorer handle (routed by sample id).

    Raises:
        BadRequestError: An unknown sample id or a malformed item; the message names it.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[str(item["sample_id"])].append(i)
    calls = [
        handle.options(multiplexed_model_id=sid).score.remote([dict(items[i]) for i in members])
        for sid, members in groups.items()
    ]
    results: list[Any] = [None] * len(items)
    for members, response in zip(groups.values(), await asyncio.gather(*calls), strict=True):
        if "error" in response:
            raise BadRequestError(response["error"], int(response.get("status", 422)))
        for i, result in zip(members, response["results"], strict=True):
            results[i] = result
    return results
