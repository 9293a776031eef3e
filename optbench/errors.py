"""The one exception type whose message is shown to the user as is, without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig


class OptbenchError(Exception):
    """A problem the user can fix; the message says what was wrong and how to fix it."""


@contextmanager
def exit_status_2() -> Iterator[None]:
    """Outside a job (a sweeper's or launcher's own settings): an OptbenchError becomes its message on stderr
    and exit status 2, as a job's does, instead of Hydra's traceback or exit status 1."""
    try:
        yield
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def instantiate_checked(node: DictConfig, what: str, hint: str, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)`; a failure becomes one OptbenchError saying `what` failed, then `hint`."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, OptbenchError):
            raise exc.__cause__ from None  # our own message, without Hydra's wrapping
        raise OptbenchError(f"{what} could not be built from its configuration ({exc}). {hint}") from exc
