"""The Benchmark tab: the sweep's controls, progress and plot."""
