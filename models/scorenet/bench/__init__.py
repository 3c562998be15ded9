"""Benchmarks: throughput, end-to-end latency, learning with mixing augmentations, planted task."""
