"""The one send path: record a request's rows, then dispatch its API key's queue (see :mod:`.pipeline`)."""
