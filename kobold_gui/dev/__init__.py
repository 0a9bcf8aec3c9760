"""Developer tools, never imported by the product nor bundled: synthetic models for tests and
benchmarks."""
