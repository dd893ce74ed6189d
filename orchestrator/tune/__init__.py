"""Ray Tune wiring: the runner, the Ray session, the Tune adapter and trainables, Ray's metrics.

The only code in openamt that imports Ray, whose API moves: a Ray upgrade touches this package.
"""
