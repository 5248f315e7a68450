"""SandboxConfig checks, run-time switches and the command line."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, config_from_args

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "switches",
    [
        {"open_rate": 1.5},
        {"drop_rate": -0.1},
        {"duplicate_webhooks": 2.0},
        {"latency": -1.0},
        {"daily_quota": -1},
        {"threads": 0},
        {"webhook_url": "http://127.0.0.1:1/hook"},
        {"webhook_url": "http://127.0.0.1:1/hook", "webhook_secret": "whsec_YQ=="},
    ],
)
def test_config_refuses_invalid_switches(switches: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**switches)


def test_config_error_never_shows_the_secret() -> None:
    with pytest.raises(ValueError) as caught:
        SandboxConfig(webhook_url="http://h/x", webhook_secret="whsec_c2hvcnRzZWNyZXQ=")
    assert "c2hvcnRzZWNyZXQ" not in str(caught.value)


def test_repr_hides_secret_and_keys() -> None:
    text = repr(SandboxConfig(webhook_url="http://h/x", webhook_secret=SECRET, api_keys=frozenset({"re_k1"})))
    assert SECRET not in text
    assert "re_k1" not in text


def test_with_switches_returns_a_changed_copy() -> None:
    config = SandboxConfig()
    changed = config.with_switches({"error_rate": 0.5, "api_keys": ["re_a"]})
    assert (changed.error_rate, changed.api_keys) == (0.5, frozenset({"re_a"}))
    assert config.error_rate == 0.0


def test_with_switches_refuses_fixed_fields() -> None:
    with pytest.raises(ValueError, match="port"):
        SandboxConfig().with_switches({"port": 9000})


def test_command_line_reads_every_kind_of_option() -> None:
    config = config_from_args(
        [
            "--port", "9001",
            "--webhook-url", "http://127.0.0.1:9/hook",
            "--webhook-secret", SECRET,
            "--rate-limit-per-second", "0",
            "--daily-quota", "100",
            "--shuffle-webhooks",
            "--api-key", "re_a",
            "--api-key", "re_b",
            "--seed", "3",
        ]
    )  # fmt: skip
    assert config.port == 9001
    assert config.webhook_secret == SECRET
    assert config.rate_limit_per_second == 0.0
    assert config.daily_quota == 100
    assert config.shuffle_webhooks is True
    assert config.api_keys == frozenset({"re_a", "re_b"})
    assert config.seed == 3


def test_command_line_defaults_match_the_dataclass() -> None:
    assert config_from_args([]) == SandboxConfig()


def test_secrets_come_from_the_environment_out_of_the_process_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SANDBOX_API_KEYS", "re_a, re_b")

    config = config_from_args(["--webhook-url", "http://127.0.0.1:9/hook"])

    assert config.webhook_secret == SECRET
    assert config.api_keys == frozenset({"re_a", "re_b"})


def test_secret_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_WEBHOOK_SECRET", "whsec_" + "QUJD" * 8)
    monkeypatch.setenv("SANDBOX_API_KEYS", "re_env")

    config = config_from_args(
        ["--webhook-url", "http://h/x", "--webhook-secret", SECRET, "--api-key", "re_option"]
    )

    assert config.webhook_secret == SECRET
    assert config.api_keys == frozenset({"re_option"})


def test_server_runs_one_gthread_worker() -> None:
    server = SandboxServer(SandboxConfig(port=9002, threads=6))
    assert server.cfg.workers == 1
    assert server.cfg.worker_class_str == "gthread"
    assert server.cfg.threads == 6
    assert server.cfg.bind == ["127.0.0.1:9002"]
