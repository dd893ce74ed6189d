"""openamt orchestrator: job specs, trials on Ray Tune, the ledger, metrics and the CLI.

Modules that talk to Ray are few and named for it (`tune_runner`, `ray_searcher`); everything else
imports without Ray so it can be used and tested on its own.
"""
