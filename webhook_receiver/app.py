"""The receiver's app factory: ``create_app(settings=None) -> Flask``.

Start-up refuses a configuration it cannot verify with (no secret, or one that does not decode to
24-64 bytes), naming ``RESEND_WEBHOOK_SECRET``. Building the app opens no connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, create_engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.errors import ConfigError, PayloadInvalid, WebhookVerificationError
from shared.rate_limit import RateLimiter
from shared.settings import Settings, get_settings
from shared.unsubscribe.links import UnsubscribeLinks
from shared.webhook_signature import decode_secret
from webhook_receiver.body_deadline import body_deadline
from webhook_receiver.dispatch import BatchingDispatcher, CeleryPublisher, Dispatcher
from webhook_receiver.fast_path import fast_path
from webhook_receiver.group_writer import GroupWriter
from webhook_receiver.metrics import PrometheusMetrics, ReceiverMetrics, rejection_reason
from webhook_receiver.receiver import WebhookReceiver
from webhook_receiver.storage import StorageUnavailable, autocommit
from webhook_receiver.unsubscribe import views as unsubscribe_views
from webhook_receiver.unsubscribe.service import UnsubscribeService
from webhook_receiver.views import EXTENSION, OUTCOME, WEBHOOK_PATH, blueprint, signature_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

#: Seconds Resend is asked to wait after a 503 (Svix retries on its own schedule anyway).
RETRY_AFTER_S = 30
#: Connections per worker process for /healthz (webhooks are stored on the group writer's own one).
POOL_SIZE = 8


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    dispatcher: Dispatcher | None = None,
    metrics: ReceiverMetrics | None = None,
    clock: Callable[[], float] = time.time,
    limiter: RateLimiter | None = None,
) -> Flask:
    """The receiver app; ``engine``, ``dispatcher``, ``metrics`` and ``limiter`` (the unsubscribe
    pages' client limits) default to ones built from settings (metrics: :class:`PrometheusMetrics`,
    served at ``/metrics``).

    ``clock`` (unix seconds) is what signature timestamps are checked against; tests freeze it.
    """
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.pilot_webhook_max_body_bytes
    base_engine = engine or receiver_engine(settings)
    engine = autocommit(base_engine)
    app.extensions[EXTENSION] = WebhookReceiver(
        keys=webhook_keys(settings),
        engine=engine,
        writer=GroupWriter(engine),
        dispatcher=dispatcher or BatchingDispatcher(CeleryPublisher(broker_url=settings.broker_url)),
        clock=clock,
    )
    metrics = metrics or PrometheusMetrics()
    app.extensions[unsubscribe_views.EXTENSION] = UnsubscribeService(
        links=UnsubscribeLinks.from_settings(settings),
        engine=base_engine,
        limiter=limiter or RateLimiter.from_settings(settings),
        count=metrics.count_unsubscribe if isinstance(metrics, PrometheusMetrics) else _no_count,
    )
    app.register_blueprint(blueprint)
    app.register_blueprint(unsubscribe_views.blueprint)
    _register_error_handlers(app)
    if settings.pilot_proxy_hops:
        # The client address of the unsubscribe pages' limits is the proxy's X-Forwarded-For entry.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.pilot_proxy_hops)  # type: ignore[method-assign]
    app.wsgi_app = fast_path(  # type: ignore[method-assign, assignment]
        app.wsgi_app,
        path=WEBHOOK_PATH,
        receiver=lambda: app.extensions[EXTENSION],
        limit=settings.pilot_webhook_max_body_bytes,
        outcome_key=OUTCOME,
        headers_of=signature_headers,
    )
    app.wsgi_app = body_deadline(app.wsgi_app)  # type: ignore[method-assign, assignment]
    _register_metrics(app, metrics)
    return app


def _no_count(source: str, scope: str) -> None:
    """Counts nothing (the app's metrics are not Prometheus')."""


def receiver_engine(settings: Settings) -> Engine:
    """A pooled engine without pre-ping: a stale connection costs one 503 (Resend retries), while a
    ping would cost a round trip on every request. The app is built in each gunicorn worker."""
    return create_engine(
        settings.database_url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_recycle=1800
    )


def webhook_keys(settings: Settings) -> list[bytes]:
    """The HMAC keys of ``RESEND_WEBHOOK_SECRET``; raises :class:`ConfigError` naming it."""
    secrets = [secret.get_secret_value() for secret in settings.resend_webhook_secret]
    if not secrets:
        raise ConfigError("RESEND_WEBHOOK_SECRET: not set; the receiver cannot verify webhooks")
    keys = []
    for index, secret in enumerate(secrets, start=1):
        try:
            keys.append(decode_secret(secret))
        except ValueError as exc:
            # decode_secret's message names the problem, never the value.
            raise ConfigError(f"RESEND_WEBHOOK_SECRET: secret #{index}: {exc}") from None
    return keys


#: Rejection reasons of the HTTP errors a webhook request can meet before verification.
HTTP_REJECTIONS = {
    405: "method",
    408: "slow_body",
    413: "too_large",
    415: "content_type",
    400: "malformed",
}


#: The text of the unsubscribe pages' plain error page for each HTTP error.
PAGE_ERRORS = {
    404: "error_not_found",
    405: "error_method",
    413: "error_too_large",
    415: "error_content_type",
}


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(WebhookVerificationError)
    def unverified(exc: WebhookVerificationError) -> tuple[Response, int]:
        # The reason is ours ("timestamp too old"...), never the secret, signature or body.
        logger.info("webhook refused: %s", exc.reason)
        request.environ[OUTCOME] = rejection_reason(exc.reason)
        return _error(400, "invalid_signature", exc.reason)

    @app.errorhandler(PayloadInvalid)
    def invalid(exc: PayloadInvalid) -> tuple[Response, int]:
        logger.info("webhook refused: %s", exc)
        request.environ[OUTCOME] = "malformed"
        return _error(400, "invalid_payload", str(exc))

    @app.errorhandler(StorageUnavailable)
    def unavailable(exc: StorageUnavailable) -> tuple[Response, int]:
        logger.error("webhook not stored, answering 503: %s", exc)
        response, status = _error(503, "unavailable", "try again later")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        if request.path.startswith(unsubscribe_views.PAGE_PREFIXES):
            return unsubscribe_views.error_page(status, PAGE_ERRORS.get(status, "error_bad_request")), status
        request.environ[OUTCOME] = reason = HTTP_REJECTIONS.get(status)
        if reason is not None and request.path == WEBHOOK_PATH:
            logger.info("webhook refused (%d): %s", status, exc.description)
        return _error(status, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")


def _register_metrics(app: Flask, metrics: ReceiverMetrics) -> None:
    """Time and count webhook requests around the whole WSGI call (the view and error handlers leave
    the outcome in the environ). A middleware, not request hooks: Flask's hooks and ``g`` lookups
    cost more per request than the observation itself."""
    inner = app.wsgi_app

    def observed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return inner(environ, start_response)
        started = time.perf_counter()
        status: list[str] = []

        def recording(name: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(name)
            return start_response(name, headers, exc_info)

        body = inner(environ, recording)
        metrics.observe(int(status[-1][:3]), time.perf_counter() - started, environ.get(OUTCOME))
        return body

    app.wsgi_app = observed  # type: ignore[method-assign]
    if isinstance(metrics, PrometheusMetrics):
        app.add_url_rule("/metrics", "metrics", lambda: _exposition(metrics))


def _exposition(metrics: PrometheusMetrics) -> Response:
    return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
