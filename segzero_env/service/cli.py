"""``segzero serve``: start the scoring service (Ray Serve) and keep it up until interrupted.

``segzero serve --env ReasonSeg-v0 --env-kwargs data_root=/data/ReasonSeg 'segmenter_kwargs={"model": "large"}'
--replicas 2 --num-gpus 1`` serves ``POST /score``, ``POST /segment``, ``GET /health`` and
``GET /metrics`` on 127.0.0.1:8000. Needs the ``serve`` extra (``pip install "segzero-env[serve]"``).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

from segzero_env.service.client import TOKEN_ENV


def add_subparser(subparsers: Any) -> None:
    """Add ``serve`` to the ``segzero`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve an env's scoring over HTTP with Ray Serve (dynamic batching, replicas, GPUs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="ReasonSegShapes-v0", help="env id whose dataset and segmenter are served")
    parser.add_argument(
        "--env-kwargs",
        nargs="*",
        action="extend",
        default=[],
        metavar="K=V",
        help="gym.make keyword arguments; values are JSON where they parse (segmenter=sam2 split=val)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="scorer replicas (default 1)")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per replica; 0.5 puts two on a GPU")
    parser.add_argument(
        "--num-cpus", type=float, default=1.0, help="CPUs reserved per replica (Ray gives torch as many threads)"
    )
    parser.add_argument("--max-batch-size", type=int, default=64, help="requests gathered into one scoring pass")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0, help="wait for more requests after the first")
    parser.add_argument("--max-queued", type=int, default=256, help="requests in flight before 429 (default 256)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help=f"environment variable holding the bearer token to require (default {TOKEN_ENV}; unset: no token)",
    )
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard with a local cluster")
    parser.add_argument("--max-reply-chars", type=int, default=32_768, help="longest reply accepted")
    parser.set_defaults(func=run)

    openenv = subparsers.add_parser(
        "serve-openenv",
        help="serve an env as an OpenEnv environment (reset / step / state over HTTP and WebSocket)",
        description="ReasonSeg on openenv-core's server. With --env-kwargs segmenter=remote "
        '\'segmenter_kwargs={"url": "http://127.0.0.1:8000"}\' the masks come from `segzero serve`.',
    )
    openenv.add_argument("--env", default="ReasonSegShapes-v0", help="env id")
    openenv.add_argument(
        "--env-kwargs", nargs="*", action="extend", default=[], metavar="K=V", help="gym.make keyword arguments"
    )
    openenv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    openenv.add_argument("--port", type=int, default=8001)
    openenv.add_argument("--max-sessions", type=int, default=64, help="concurrent WebSocket sessions")
    openenv.set_defaults(func=run_openenv)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~segzero_env.service.app.ServiceConfig` the flags describe."""
    from segzero_env.evaluation.cli import parse_kwargs
    from segzero_env.service.config import ServiceConfig
    from segzero_env.service.protocol import Limits

    return ServiceConfig(
        env_id=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs, "--env-kwargs"),
        replicas=args.replicas,
        num_gpus=args.num_gpus,
        num_cpus=args.num_cpus,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_ms / 1000.0,
        max_ongoing_requests=max(128, args.max_batch_size),
        max_queued_requests=args.max_queued,
        token=os.environ.get(args.token_env) or None,
        host=args.host,
        port=args.port,
        limits=Limits(max_reply_chars=args.max_reply_chars),
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Start the service and block until Ctrl-C; then shut Serve down."""
    config = config_from_args(args)
    try:
        from ray import serve

        from segzero_env.service.app import start
    except ImportError as error:
        hint = "install it: pip install 'segzero-env[serve]'"
        raise SystemExit(f"segzero serve needs Ray Serve ({error}); {hint}") from None
    import ray

    started_ray = not ray.is_initialized() and args.ray_address is None
    ray_init = {"include_dashboard": args.dashboard} if started_ray else {}
    previous = signal.getsignal(signal.SIGTERM)
    try:
        start(config, ray_address=args.ray_address, **ray_init)
        # After Ray has started: its own fatal-signal handler would abort the process on SIGTERM.
        # `kill PID` shuts down as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        auth = "bearer token required" if config.token else f"no token (set ${args.token_env} to require one)"
        where = f"http://{config.host}:{config.port} ({config.env_id}, {auth})"
        print(f"segzero scoring service: {where}; Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        serve.shutdown()
        if started_ray:
            ray.shutdown()
    return 0


def run_openenv(args: argparse.Namespace) -> int:
    """Serve the env on openenv-core's FastAPI app with uvicorn until interrupted."""
    from segzero_env.evaluation.cli import parse_kwargs

    try:
        import uvicorn

        from segzero_env.service.openenv_env import create_openenv_app
    except ImportError as error:
        hint = "install it: pip install 'segzero-env[openenv]'"
        raise SystemExit(f"segzero serve-openenv needs openenv-core ({error}); {hint}") from None
    app = create_openenv_app(args.env, parse_kwargs(args.env_kwargs, "--env-kwargs"), args.max_sessions)
    print(f"segzero OpenEnv server: http://{args.host}:{args.port} ({args.env}); Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
