"""The reputation guard: bounce and complaint rates per organization, connector and campaign.

Counted as webhook events are applied (:mod:`.counting`), judged against thresholds (:mod:`.policy`,
:mod:`.guard`); a paused scope's bulk rows wait at dispatch. See docs/architecture.md, "Reputation".
"""
