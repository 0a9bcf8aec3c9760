"""The GPUs tab: live NVML readings, the poller thread, and the feed of the build and GPUs into the
launch state."""
