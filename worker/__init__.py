"""Celery app and tasks. Importing it opens no connection."""
