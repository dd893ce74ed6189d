"""`openamt report`: one self-contained HTML page about a job, with its plots."""
