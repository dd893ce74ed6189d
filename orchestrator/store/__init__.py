"""The job directory and everything read from it: ledger, trial records, the one read model.

The only code that spells a file name of the job directory (`store.job_dir`).
"""
