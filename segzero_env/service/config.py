"""Settings of the scoring service (importable without Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segzero_env.service.protocol import Limits


@dataclass
class ServiceConfig:
    """Everything ``segzero serve`` sets.

    Attributes:
        env_id: Gymnasium id whose dataset, segmenter and rewards the scorer holds.
        env_kwargs: ``gym.make`` keyword arguments (fixed at start; requests cannot change them).
        replicas: Scorer replicas.
        num_gpus: GPUs per scorer replica (fractions share a GPU; 0 runs on the CPU).
        num_cpus: CPUs reserved per scorer replica.
        max_batch_size: Most requests ``@serve.batch`` gathers into one pass.
        batch_wait_timeout_s: How long a batch waits for more requests after its first.
        max_ongoing_requests: Requests a scorer replica accepts at once (at least ``max_batch_size``).
        max_queued_requests: Requests in flight in the ingress before it answers 429.
        retry_after_s: The ``Retry-After`` given with 429 and 503.
        max_cached_samples: Prepared samples a replica keeps (routing follows them).
        idempotency_cache: Completed request ids remembered for retries (their answers are kept).
        token: Bearer token every request must carry (``None``: no authentication).
        host: Address the HTTP proxy binds (127.0.0.1 unless told otherwise).
        port: HTTP port.
        limits: Body size caps.
    """

    env_id: str = "ReasonSegShapes-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    replicas: int = 1
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    max_batch_size: int = 64
    batch_wait_timeout_s: float = 0.01
    max_ongoing_requests: int = 128
    max_queued_requests: int = 256
    retry_after_s: int = 1
    max_cached_samples: int = 64
    idempotency_cache: int = 10_000
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")
        if self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError(f"num_gpus and num_cpus must be >= 0, got {self.num_gpus} and {self.num_cpus}")
        if self.max_batch_size < 1 or self.max_queued_requests < 1:
            raise ValueError("max_batch_size and max_queued_requests must be at least 1")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                f"({self.max_batch_size}), or batches can never fill"
            )
        if self.env_kwargs.get("max_turns", 1) != 1:
            raise ValueError("the scoring service scores single replies; leave max_turns at 1")
