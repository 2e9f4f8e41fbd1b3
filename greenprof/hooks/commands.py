"""The `greenprof` verbs of greenprof.hooks (registered by greenprof.cli)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's verbs to the command line."""
