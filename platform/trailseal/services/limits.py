"""Counters in fixed time windows (Redis): API-key rate limits and sign-in budgets."""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)


def hit_window(svc, name: str, window: int, bucket: int | None = None) -> int | None:
    """Count one hit in a fixed window of ``name`` (the current one unless ``bucket`` is
    given); None when Redis is down."""
    if bucket is None:
        bucket = int(time.time() // window)
    key = f"trailseal:{name}:{bucket}"
    try:
        pipe = svc.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window + 1)
        return int(pipe.execute()[0])
    except redis.RedisError:
        log.warning("rate limiter unavailable (Redis error); request not limited")
        return None
