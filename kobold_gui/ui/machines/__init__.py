"""The Machines tab: remote machines' cards and sharing this machine."""
