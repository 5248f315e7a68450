"""What the worker does with broker messages before any task runs: check them, dead-letter the malformed."""
