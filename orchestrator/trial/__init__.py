"""One trial's process: launch, supervision, script-mode environment, metric parsing, and how
it ended (`outcome.TrialState`, `outcome.TrialEnd`). No Ray in here.
"""
