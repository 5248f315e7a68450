"""Which class a send is in: the caller's ``priority`` if given, else transactional for a
``pilot.send_email`` to a handful of addresses and bulk for everything else.

The rule is part of the wire contract, so it lives in :mod:`marketing_pilot_client.contract`.
"""

from __future__ import annotations

from marketing_pilot_client.contract import TRANSACTIONAL_MAX_RECIPIENTS, priority_for, priority_of_kwargs

__all__ = ["TRANSACTIONAL_MAX_RECIPIENTS", "priority_for", "priority_of_kwargs"]
