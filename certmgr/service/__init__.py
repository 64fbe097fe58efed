"""The long-running service: daemon, its jobs, systemd notify, metrics."""
