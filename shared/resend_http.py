"""The HTTP connection to Resend: one pooled ``httpx`` transport with our base URL, headers and timeouts.

Requests go straight to the transport (``httpx.HTTPTransport``, or a ``MockTransport`` in tests), not
through ``httpx.Client``, whose per-request machinery is not wanted here and costs a large share of a
send's CPU (docs/architecture.md, "Errors and what the send path does"). Transport errors stay
``httpx`` exceptions; ``resend_client`` maps them.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from types import TracebackType

import httpx

#: Connections kept per process (every connector of a worker shares them).
MAX_CONNECTIONS = 20
MAX_KEEPALIVE_CONNECTIONS = 10


class ResendHTTP:
    """Sends requests to ``base_url`` through one pooled transport; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._transport = transport or httpx.HTTPTransport(
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS
            ),
            proxy=environment_proxy(self.base_url),
        )
        self.is_closed = False

    def __repr__(self) -> str:
        return f"ResendHTTP(base_url={str(self.base_url)!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One exchange, its body read; raises ``httpx.HTTPError`` subclasses on transport failures."""
        if self.is_closed:
            raise RuntimeError("ResendHTTP is closed")
        # As httpx.Client merges a path into its base URL: appended to the base's own path.
        url = self.base_url.copy_with(raw_path=self.base_url.raw_path + path.lstrip("/").encode("ascii"))
        request = httpx.Request(
            method,
            url,
            content=content,
            headers={**self.headers, **(headers or {})},
            extensions={"timeout": self.timeout.as_dict()},
        )
        response = self._transport.handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        return response

    def close(self) -> None:
        """Close the pooled connections."""
        self.is_closed = True
        self._transport.close()

    def __enter__(self) -> ResendHTTP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...),
    as ``httpx.Client`` would use it: a worker behind a proxy keeps reaching Resend through it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy
