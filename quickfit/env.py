"""The process's place in a distributed job, read from the environment `torchrun` sets, in one place.

    from quickfit import env
    env.rank(), env.world_size(), env.local_rank()   # 0, 1, 0 outside torchrun

Read on every call (not cached at import): torchrun's elastic restarts and tests set these variables
after quickfit is imported.
"""

from __future__ import annotations

import os

__all__ = ["rank", "world_size", "local_rank", "is_main_process", "in_torchrun", "torchrun_vars_missing"]


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return rank() == 0


def in_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ


def torchrun_vars_missing() -> list[str]:
    """The variables a process group needs that are not set (empty under torchrun)."""
    return [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE") if v not in os.environ]
