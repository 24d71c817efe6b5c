"""Exposure-notification matching service: GAEN-compatible keys published as signed batches of compressed Bloom filters."""

__version__ = "0.1.0"
