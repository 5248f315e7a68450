"""Shared package: settings, data model, connectors, rate limiting, crypto and signing.

Importing it opens no connection and reads no environment variable.
"""
