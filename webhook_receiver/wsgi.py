"""WSGI entry for gunicorn: ``gunicorn webhook_receiver.wsgi:app``.

The only module-level app: importing it reads the environment and configures logging. A bad
``RESEND_WEBHOOK_SECRET`` stops the server here, with a message naming the setting.
"""

from __future__ import annotations

from shared.logs import configure_logging
from shared.settings import get_settings
from webhook_receiver.app import create_app

settings = get_settings()
configure_logging(settings)
app = create_app(settings)
