"""Watching a running job: the Prometheus exporter, its HTTP server and listener, live progress."""
