"""Throughput and overhead measurements; each figure is a ratio against a baseline in the same run."""
