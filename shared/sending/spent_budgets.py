"""Connectors whose email budget this process saw spent: peeked at before a request token is taken.

The request token is taken first (the request rate is the usual limit), so a backlog parked at a
spent budget would burn the key's request rate that other connectors on the key need. Once a
connector's budget was refused, this process peeks at it (taking nothing) until it grants again.
"""

from __future__ import annotations

import uuid

from shared.models import Priority
from shared.rate_limit import ConnectorLimits, Decision, RateLimiter


class SpentBudgets:
    """The connectors whose budget this process last saw refused, per class of mail (bulk mail sees
    it spent at the transactional reserve); shared by the process's threads."""

    def __init__(self) -> None:
        self._spent: set[tuple[uuid.UUID, Priority]] = set()

    def saw_spent(self, connector_id: uuid.UUID, priority: Priority) -> None:
        """The connector's budget refused a take for ``priority``: peek before the next request token."""
        self._spent.add((connector_id, priority))

    def refusal(
        self,
        limiter: RateLimiter,
        connector_id: uuid.UUID,
        n: int,
        limits: ConnectorLimits,
        priority: Priority,
    ) -> Decision | None:
        """The budget's refusal of ``n`` tokens for ``priority`` if it was seen spent and still is;
        None to go on.

        Raises what :meth:`RateLimiter.peek_emails` raises.
        """
        seen = (connector_id, priority)
        if seen not in self._spent:
            return None
        decision = limiter.peek_emails(connector_id, n, limits, keep_reserve=priority is Priority.BULK)
        if decision.granted:
            self._spent.discard(seen)
            return None
        return decision
