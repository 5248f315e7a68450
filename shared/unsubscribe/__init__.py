"""One-click unsubscribe (RFC 8058) and topics.

``tokens`` seals what a link names (organization, email, recipient, topic) so it opens without a
database lookup; ``links`` turns tokens into URLs and headers; ``topics`` is the rule of which
suppression entries stop which emails; ``actions`` records an unsubscribe or an undo.
"""
