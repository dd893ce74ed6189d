"""Deciding what runs and when it stops: the trial planner, suggest-ahead, early stopping,
completion criteria and job control, and the events listeners hear. No Ray; files only through
`orchestrator.store`.
"""
