"""The HPO-quality benchmark: problems, methods (openamt and its peers), frozen references,
scoring. ``benchmarks/hpo_quality.py`` is the entry point."""
