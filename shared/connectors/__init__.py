"""Connector types: base classes, the Resend connector and the registry."""
