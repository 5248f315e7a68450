"""Signed deliveries to the receiver while a crowd of slow clients holds sockets open (slowloris).

The receiver runs under gunicorn with its own settings (``webhook_receiver.gunicorn_conf``); switches
after ``--`` override them, to measure an alternative (``-- --worker-class gthread --threads 4``).
``--nginx BINARY`` puts nginx in front with docker-compose's server block for the receiver.
``SOCKETS`` slow clients (half trickling header lines, half a body, one piece a second; each one cut
off is replaced at once) stay open for ``HOLD_S`` seconds while a signed delivery is posted every
``EVERY_S``. Printed: each delivery's status and latency, how many were answered within 1 s, and
what the server did to the slow sockets.

    .venv/bin/python tests/benchmarks/bench_slow_clients.py [--sockets N] [--hold S] [--nginx BIN] [-- ARGS]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_webhooks import bench_database, isolated_broker
from tests.process_control import stop_process, wait_until_answering
from tests.receiver_process import ROOT, running_receiver
from tests.sandbox_process import free_port
from tests.slow_clients import slow_crowd
from tests.webhook_factories import resend_body
from tests.webhook_requests import PATH, SECRET_A, signed

SOCKETS = 200
HOLD_S = 20.0
EVERY_S = 1.0
CLIENT_TIMEOUT_S = 5.0
NGINX_MAIN = """
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/receiver.conf;
}}
"""


@contextlib.contextmanager
def nginx_in_front(binary: str, upstream_url: str) -> Iterator[str]:
    """nginx with the compose file's server block, proxying to ``upstream_url``; yields its URL."""
    port = free_port()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    server = compose["configs"]["nginx_receiver"]["content"]
    server = server.replace("server receiver:8000;", f"server {upstream_url.removeprefix('http://')};")
    server = server.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix, tempfile.TemporaryFile() as log:
        (Path(prefix) / "receiver.conf").write_text(server)
        (Path(prefix) / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix))
        process = subprocess.Popen(
            [binary, "-p", prefix, "-c", f"{prefix}/nginx.conf"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_answering(f"{url}/healthz", process, log, name="nginx", timeout=10)
            yield url
        finally:
            stop_process(process)


def front(nginx: str | None, receiver_url: str) -> contextlib.AbstractContextManager[str]:
    """Where clients connect: nginx in front of the receiver when a binary is given, else the receiver."""
    return nginx_in_front(nginx, receiver_url) if nginx else contextlib.nullcontext(receiver_url)


def deliveries(url: str, hold: float) -> list[tuple[str, float]]:
    """A signed delivery every ``EVERY_S`` for ``hold`` seconds: (status or error, seconds) each."""
    answers: list[tuple[str, float]] = []
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        started = time.monotonic()
        while time.monotonic() - started < hold:
            time.sleep(EVERY_S)
            request = signed(resend_body("delivered", "e-bench-slow"), timestamp=int(time.time()))
            sent = time.monotonic()
            try:
                status = str(
                    http.post(f"{url}{PATH}", content=request.body, headers=request.headers).status_code
                )
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            answers.append((status, time.monotonic() - sent))
    return answers


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    own, switches = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=SOCKETS)
    parser.add_argument("--hold", type=float, default=HOLD_S)
    parser.add_argument("--nginx", help="an nginx binary to put in front of the receiver")
    args = parser.parse_args(own)
    with (
        bench_database() as database_url,
        isolated_broker() as broker_url,
        running_receiver(
            database_url=database_url, broker_url=broker_url, secret=SECRET_A, extra=switches
        ) as receiver,
        nginx_in_front(args.nginx, receiver.url)
        if args.nginx
        else contextlib.nullcontext(receiver.url) as url,
        slow_crowd(url, sockets=args.sockets) as crowd,
    ):
        answers = deliveries(url, args.hold)
    answered = sorted(seconds for status, seconds in answers if status == "200")
    variant = " ".join(switches) or "webhook_receiver.gunicorn_conf as it is"
    print(f"{'server':>12}: gunicorn, {variant}" + (" behind nginx" if args.nginx else ""))
    print(f"{'crowd':>12}: {args.sockets} slow sockets for {args.hold:g} s; {crowd.summary()}")
    print(
        f"{'deliveries':>12}: "
        + ", ".join(f"{status} {seconds * 1000:.0f} ms" for status, seconds in answers)
    )
    within = sum(seconds < 1 for seconds in answered)
    slowest = f"{answered[-1] * 1000:.0f} ms" if answered else "-"
    print(
        f"{'answered':>12}: {len(answered)}/{len(answers)} with 200, {within} within 1 s, slowest {slowest}"
    )


if __name__ == "__main__":
    main()
