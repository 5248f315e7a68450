"""Run the sandbox under gunicorn: ONE worker process (state is in memory) with gthread threads.

``SANDBOX_WEBHOOK_SECRET=whsec_… python -m sandbox --port 8025 --webhook-url http://127.0.0.1:8000/api/webhooks/resend``
Every :class:`~sandbox.config.SandboxConfig` field is an option (``--drop-rate 0.1``...). Secrets are
better given in the environment (``SANDBOX_WEBHOOK_SECRET``, ``SANDBOX_API_KEYS`` comma-separated),
where ``ps`` does not show them; an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from sandbox.app import create_app
from sandbox.config import SandboxConfig

#: Environment variables read when the option is not given (secrets stay out of the process list).
WEBHOOK_SECRET_ENV = "SANDBOX_WEBHOOK_SECRET"
API_KEYS_ENV = "SANDBOX_API_KEYS"

#: How each field type (as written in the dataclass) is read from the command line.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "float": float,
    "int": int,
    "str": str,
    "str | None": str,
    "int | None": int,
}


class SandboxServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """Gunicorn application serving one sandbox app."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": f"{self._config.host}:{self._config.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": self._config.threads,
            "loglevel": "warning",
            "accesslog": None,
            "keepalive": 30,
            "timeout": 60,
            "graceful_timeout": 5,
            "backlog": 2048,
        }
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        # Runs in the worker process, so the app's state and webhook threads live there.
        return create_app(self._config)


def serve(config: SandboxConfig) -> None:
    """Serve the sandbox until interrupted (blocks)."""
    SandboxServer(config).run()


def build_parser() -> argparse.ArgumentParser:
    """An option for every :class:`SandboxConfig` field."""
    parser = argparse.ArgumentParser(prog="pilot sandbox", description="A local Resend-compatible server.")
    for field in dataclasses.fields(SandboxConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action="store_true", default=field.default)
        elif field.name == "api_keys":
            parser.add_argument(
                "--api-key",
                dest="api_keys",
                action="append",
                default=[],
                help=f"repeatable (or {API_KEYS_ENV})",
            )
        elif field.name == "webhook_secret":
            parser.add_argument(flag, default=None, help=f"whsec_... (better: {WEBHOOK_SECRET_ENV})")
        else:
            parser.add_argument(flag, type=_PARSERS[str(field.type)], default=field.default)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> SandboxConfig:
    """The :class:`SandboxConfig` the command line asks for (``ValueError`` on a bad value)."""
    values = vars(build_parser().parse_args(argv))
    if values["webhook_secret"] is None:
        values["webhook_secret"] = os.environ.get(WEBHOOK_SECRET_ENV) or None
    if not values["api_keys"]:
        values["api_keys"] = [
            key.strip() for key in os.environ.get(API_KEYS_ENV, "").split(",") if key.strip()
        ]
    values["api_keys"] = frozenset(values["api_keys"])
    return SandboxConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sandbox`` and ``pilot sandbox``."""
    try:
        config = config_from_args(argv)
    except ValueError as exc:
        build_parser().error(str(exc))
    serve(config)
    return 0
