"""Trainers, each a script-mode program run as `python -m models.<name>`."""
