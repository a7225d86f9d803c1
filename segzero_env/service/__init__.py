"""The env as a service: shared, batched scoring on Ray Serve, with HTTP clients for trainers.

Importing this package imports neither Ray nor torch: the server lives in
:mod:`segzero_env.service.app` (``segzero serve``), the clients in
:mod:`segzero_env.service.client` and :mod:`segzero_env.service.remote_segmenter`.
"""

from segzero_env.service.client import ScorerClient, ServiceError
from segzero_env.service.config import ServiceConfig
from segzero_env.service.protocol import BadRequestError, Limits

__all__ = ["BadRequestError", "Limits", "ScorerClient", "ServiceConfig", "ServiceError"]
