"""A local Resend-compatible server for the demo, end-to-end tests and benchmarks."""
