"""Benchmarks, each measured next to its baseline in the same run (`make bench`, `make bench QUICK=1`)."""
