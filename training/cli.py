"""What the command-line entry points share: problems the user can fix (bad data, a bad model
name) end as one ``error: …`` line and exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from .data import DataError
from .model_source import ModelSourceError


def run_cli(run: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    try:
        run(argv)
    except (DataError, ModelSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
