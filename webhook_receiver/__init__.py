"""Flask app receiving Resend's Svix-signed webhooks; gunicorn serves ``webhook_receiver.wsgi:app``."""

from __future__ import annotations

from webhook_receiver.app import create_app

__all__ = ["create_app"]
