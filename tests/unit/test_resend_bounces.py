"""shared.resend_bounces: a bounce's type from its type, else its subtype, else its documented message."""

from __future__ import annotations

from typing import Any

import pytest

from shared.resend_bounces import UNCLASSIFIED, BounceSource, BounceType, classify_bounce

# The sentences Resend documents per bounce type and subtype (its "Email Bounces" page, the webhook
# examples, and payloads recorded before `type` was sent).
DOCUMENTED_MESSAGES = [
    (
        "The recipient's email provider sent a hard bounce message, but didn't specify the reason for "
        "the hard bounce. We recommend removing the recipient's email address from your mailing list.",
        BounceType.PERMANENT,
    ),
    ("The recipient's email provider sent a hard bounce message.", BounceType.PERMANENT),
    (
        "It was not possible to retrieve the recipient email address from the bounce message.",
        BounceType.PERMANENT,
    ),
    (
        "The recipient's email address is on the suppression list because it has a recent history of "
        "producing hard bounces.",
        BounceType.PERMANENT,
    ),
    (
        "Resend has suppressed sending to this address because it is on the account-level suppression "
        "list. This does not count toward your bounce rate metric",
        BounceType.PERMANENT,
    ),
    (
        'Resend has suppressed sending to this address because it has previously "hard bounced."',
        BounceType.PERMANENT,
    ),
    (
        "The recipient's email provider sent a general bounce message. You might be able to send a "
        "message to the same recipient in the future if the issue that caused the message to bounce is "
        "resolved.",
        BounceType.TRANSIENT,
    ),
    (
        "The recipient's email provider sent a bounce message because the recipient's inbox was full.",
        BounceType.TRANSIENT,
    ),
    (
        "The recipient's email provider sent a bounce message because message you sent was too large.",
        BounceType.TRANSIENT,
    ),
    (
        "The recipient's email provider sent a bounce message because the message you sent contains "
        "content that the provider doesn't allow.",
        BounceType.TRANSIENT,
    ),
    (
        "The recipient's email provider sent a bounce message because the message contained an "
        "unacceptable attachment.",
        BounceType.TRANSIENT,
    ),
    (
        "The recipient's email provider sent a bounce message. The bounce message didn't contain "
        "enough information for Resend to determine the reason for the bounce.",
        BounceType.UNDETERMINED,
    ),
    ("The recipient\u2019s email provider sent a hard bounce message.", BounceType.PERMANENT),
]


@pytest.mark.parametrize(("message", "expected"), DOCUMENTED_MESSAGES)
def test_classify_bounce_without_type_reads_the_documented_message(
    message: str, expected: BounceType
) -> None:
    assert classify_bounce({"message": message}) == (expected, BounceSource.MESSAGE)


@pytest.mark.parametrize(
    ("subtype", "expected"),
    [
        ("NoEmail", BounceType.PERMANENT),
        ("Suppressed", BounceType.PERMANENT),
        ("OnAccountSuppressionList", BounceType.PERMANENT),
        ("MailboxFull", BounceType.TRANSIENT),
        ("MessageTooLarge", BounceType.TRANSIENT),
        ("ContentRejected", BounceType.TRANSIENT),
        ("AttachmentRejected", BounceType.TRANSIENT),
        ("Undetermined", BounceType.UNDETERMINED),
    ],
)
def test_classify_bounce_without_type_reads_a_subtype_of_one_type(subtype: str, expected: BounceType) -> None:
    assert classify_bounce({"subType": subtype, "message": "sent a general bounce message"}) == (
        expected,
        BounceSource.SUBTYPE,
    )


def test_classify_bounce_general_subtype_leaves_it_to_the_message() -> None:
    bounce = {"subType": "General", "message": "The recipient's email provider sent a hard bounce message."}
    assert classify_bounce(bounce) == (BounceType.PERMANENT, BounceSource.MESSAGE)


def test_classify_bounce_type_wins_over_subtype_and_message() -> None:
    bounce = {"type": "Transient", "subType": "NoEmail", "message": "sent a hard bounce message"}
    assert classify_bounce(bounce) == (BounceType.TRANSIENT, BounceSource.TYPE)


@pytest.mark.parametrize(
    "bounce",
    [
        {},
        {"message": "Mailbox unavailable"},
        {"type": "Temporary", "subType": "General", "message": "550"},
        {"type": ["Permanent"], "subType": {"x": 1}, "message": 7},
    ],
)
def test_classify_bounce_unknown_is_unclassified(bounce: dict[str, Any]) -> None:
    assert classify_bounce(bounce) == UNCLASSIFIED
