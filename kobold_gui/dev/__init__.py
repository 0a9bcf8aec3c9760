"""Developer tools shipped with the package: synthetic models for tests and benchmarks."""
