"""Exposure-notification matching service: GAEN-compatible keys published as signed Bloom-filter batches."""

__version__ = "0.1.0"
