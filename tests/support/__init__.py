"""Helpers that tests (and benchmarks) share: real parts, started and stopped by the test itself."""
