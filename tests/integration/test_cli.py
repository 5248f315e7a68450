"""The `pilot` CLI through click's test runner against the real database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from shared.cli import cli
from shared.crypto import generate_key


@pytest.fixture
def run(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("PILOT_ENCRYPTION_KEYS", generate_key())
    from shared.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def org_id(run) -> str:  # type: ignore[no-untyped-def]
    result = run("org", "create", "Acme")
    assert result.exit_code == 0, result.output
    return result.output.strip()


def connector_id(run, org: str) -> str:  # type: ignore[no-untyped-def]
    result = run("connector", "add", "--org", org, "--name", "main", "--per-hour", "50", "--per-day", "500",
                 "--api-key", "re_cli_key", "--from", "News <news@acme.test>")  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_org_create_prints_the_new_id(run) -> None:  # type: ignore[no-untyped-def]
    uuid.UUID(org_id(run))


def test_connector_add_then_list_and_show(run) -> None:  # type: ignore[no-untyped-def]
    cid = connector_id(run, org_id(run))

    listing = run("connector", "list")
    shown = run("connector", "show", cid)

    assert "main" in listing.output and "active" in listing.output
    assert "news@acme.test" in shown.output
    assert "re_cli_key" not in listing.output + shown.output


def test_connector_set_limits_pause_resume_set_key(run) -> None:  # type: ignore[no-untyped-def]
    cid = connector_id(run, org_id(run))

    assert run("connector", "set-limits", cid, "--per-hour", "5", "--per-day", "10").exit_code == 0
    assert run("connector", "pause", cid, "--reason", "test").exit_code == 0
    assert "paused" in run("connector", "show", cid).output
    assert run("connector", "resume", cid).exit_code == 0
    assert run("connector", "set-key", cid, "--api-key", "re_other").exit_code == 0
    assert "active" in run("connector", "show", cid).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("connector", "show", "not-a-uuid"), "not a valid id"),
        (("connector", "show", str(uuid.UUID(int=0))), "does not exist"),
        (("connector", "pause", str(uuid.UUID(int=0))), "does not exist"),
        (("connector", "add", "--org", str(uuid.UUID(int=0)), "--name", "x"), "organization"),
        (("org", "create", "  "), "must not be empty"),
    ],
)
def test_bad_input_is_one_clear_line_and_non_zero_exit(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_limits_name_the_field(run) -> None:  # type: ignore[no-untyped-def]
    cid = connector_id(run, org_id(run))

    result = run("connector", "set-limits", cid, "--per-hour", "10", "--per-day", "5")

    assert result.exit_code == 1
    assert "rate_limit_per_day must not be below" in result.output


def test_suppression_add_list_export_remove(run) -> None:  # type: ignore[no-untyped-def]
    org = org_id(run)

    assert run("suppression", "add", "--org", org, "Bob@Example.COM", "--reason", "manual").exit_code == 0
    assert "bob@example.com" in run("suppression", "list", "--org", org).output
    assert (
        run("suppression", "export", "--org", org).output.splitlines()[1].startswith("bob@example.com,manual")
    )
    assert run("suppression", "remove", "--org", org, "BOB@example.com").exit_code == 0
    assert "0 address(es)" in run("suppression", "list", "--org", org).output


def test_suppression_import_csv_all_rows(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    org = org_id(run)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,reason,expires_at\na@x.io,manual,\nB@x.io,hard_bounce,2099-01-01T00:00:00\n")

    result = run("suppression", "import", "--org", org, str(csv_file))

    assert result.exit_code == 0, result.output
    assert "Imported 2" in result.output
    assert "b@x.io" in run("suppression", "list", "--org", org).output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("address\nx@y.z\n", "header must include an 'email' column"),
        ("email\nok@x.io\nnot-an-address\n", "CSV line 3: email 'not-an-address'"),
        ("email,reason\nok@x.io,because\n", "CSV line 2: reason 'because'"),
        ("email,reason,expires_at\nok@x.io,manual,tomorrow\n", "expires_at 'tomorrow'"),
        ("email\nok@x.io,extra\n", "more fields than the header"),
    ],
)
def test_malformed_csv_imports_nothing_and_names_the_line(run, tmp_path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    org = org_id(run)
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(content)

    result = run("suppression", "import", "--org", org, str(csv_file))

    assert result.exit_code == 1
    assert message in result.output
    assert "0 address(es)" in run("suppression", "list", "--org", org).output


@pytest.mark.parametrize("address", ["not-an-address", "a@b@c", "Name <a@b.c>"])
def test_suppression_add_refuses_invalid_address(run, address: str) -> None:  # type: ignore[no-untyped-def]
    result = run("suppression", "add", "--org", org_id(run), address)

    assert result.exit_code == 1
    assert "email" in result.output


def test_suppression_remove_unknown_address(run) -> None:  # type: ignore[no-untyped-def]
    result = run("suppression", "remove", "--org", org_id(run), "nobody@x.io")

    assert result.exit_code == 1
    assert "not on the suppression list" in result.output
