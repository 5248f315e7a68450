"""Flask app receiving Resend's Svix-signed webhooks; gunicorn serves ``webhook_receiver.wsgi:app``.

``create_app`` is imported on first use: gunicorn imports ``webhook_receiver.gunicorn_conf`` (and so
this package) in the arbiter, which must not import prometheus-client before its hooks set
``PROMETHEUS_MULTIPROC_DIR`` (the client chooses its storage at import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook_receiver.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from webhook_receiver.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
