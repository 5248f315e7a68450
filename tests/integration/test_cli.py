"""The `pilot` CLI through click's test runner against the real database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import Pilot


def org_id(pilot: Pilot) -> str:
    result = pilot("org", "create", "Acme")
    assert result.exit_code == 0, result.output
    return result.output.strip()


def connector_id(pilot: Pilot, org: str) -> str:
    result = pilot("connector", "add", "--org", org, "--name", "main", "--per-hour", "50", "--per-day", "500",
                 "--api-key", "re_cli_key", "--from", "News <news@acme.test>")  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_org_create_prints_the_new_id(pilot: Pilot) -> None:
    uuid.UUID(org_id(pilot))


def test_connector_add_then_list_and_show(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    listing = pilot("connector", "list")
    shown = pilot("connector", "show", cid)

    assert "main" in listing.output and "active" in listing.output
    assert "news@acme.test" in shown.output
    assert "re_cli_key" not in listing.output + shown.output


def test_connector_set_limits_pause_resume_set_key(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    assert pilot("connector", "set-limits", cid, "--per-hour", "5", "--per-day", "10").exit_code == 0
    assert pilot("connector", "pause", cid, "--reason", "test").exit_code == 0
    assert "paused" in pilot("connector", "show", cid).output
    assert pilot("connector", "resume", cid).exit_code == 0
    assert pilot("connector", "set-key", cid, "--api-key", "re_other").exit_code == 0
    assert "active" in pilot("connector", "show", cid).output


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
def test_bad_input_is_one_clear_line_and_non_zero_exit(
    pilot: Pilot, args: tuple[str, ...], message: str
) -> None:
    result = pilot(*args)

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_limits_name_the_field(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    result = pilot("connector", "set-limits", cid, "--per-hour", "10", "--per-day", "5")

    assert result.exit_code == 2
    assert "--per-day: must not be below --per-hour" in result.output


def test_suppression_add_list_export_remove(pilot: Pilot) -> None:
    org = org_id(pilot)

    assert pilot("suppression", "add", "--org", org, "Bob@Example.COM", "--reason", "manual").exit_code == 0
    assert "bob@example.com" in pilot("suppression", "list", "--org", org).output
    assert (
        pilot("suppression", "export", "--org", org)
        .output.splitlines()[1]
        .startswith("bob@example.com,manual")
    )
    assert pilot("suppression", "remove", "--org", org, "BOB@example.com").exit_code == 0
    assert "0 address(es)" in pilot("suppression", "list", "--org", org).output


def test_suppression_import_csv_all_rows(pilot: Pilot, tmp_path: Path) -> None:
    org = org_id(pilot)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,reason,expires_at\na@x.io,manual,\nB@x.io,hard_bounce,2099-01-01T00:00:00\n")

    result = pilot("suppression", "import", "--org", org, str(csv_file))

    assert result.exit_code == 0, result.output
    assert "Imported 2" in result.output
    assert "b@x.io" in pilot("suppression", "list", "--org", org).output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("address\nx@y.z\n", "no address column in the header 'address'"),
        ("email\nok@x.io\nnot-an-address\n", "CSV line 3: email 'not-an-address'"),
        ("email,reason\nok@x.io,because\n", "CSV line 2: reason 'because'"),
        ("email,reason,expires_at\nok@x.io,manual,tomorrow\n", "expires_at 'tomorrow'"),
        ("email\nok@x.io,extra\n", "more fields than the header"),
    ],
)
def test_malformed_csv_imports_nothing_and_names_the_line(
    pilot: Pilot, tmp_path: Path, content: str, message: str
) -> None:
    org = org_id(pilot)
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(content)

    result = pilot("suppression", "import", "--org", org, str(csv_file))

    assert result.exit_code == 1
    assert message in result.output
    assert "0 address(es)" in pilot("suppression", "list", "--org", org).output


@pytest.mark.parametrize("address", ["not-an-address", "a@b@c", "Name <a@b.c>"])
def test_suppression_add_refuses_invalid_address(pilot: Pilot, address: str) -> None:
    result = pilot("suppression", "add", "--org", org_id(pilot), address)

    assert result.exit_code == 1
    assert "email" in result.output


def test_suppression_remove_unknown_address(pilot: Pilot) -> None:
    result = pilot("suppression", "remove", "--org", org_id(pilot), "nobody@x.io")

    assert result.exit_code == 1
    assert "not on the suppression list" in result.output


def test_set_limits_names_both_flags_of_the_issue_example(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    result = pilot("connector", "set-limits", cid, "--per-hour", "50", "--per-day", "20")

    assert result.exit_code == 2
    assert result.output.strip() == "Error: --per-day: must not be below --per-hour"


@pytest.mark.parametrize(("flag", "value"), [("--reason", "because"), ("--expires-at", "tomorrow")])
def test_suppression_add_names_the_refused_flag(pilot: Pilot, flag: str, value: str) -> None:
    result = pilot("suppression", "add", "--org", org_id(pilot), "a@example.com", flag, value)

    assert result.exit_code == 2
    assert f"Invalid value for '{flag}'" in result.output
