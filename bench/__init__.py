"""Benchmarks of the image engine on a GPU (issue 5): see bench/README.md."""
