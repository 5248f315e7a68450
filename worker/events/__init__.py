"""Webhook events after the receiver stored them: apply each to the ledger, metrics and suppression list."""
