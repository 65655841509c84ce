"""Benchmarks of the image engine on a GPU: see bench/README.md."""
