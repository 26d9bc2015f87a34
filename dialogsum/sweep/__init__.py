"""Hyper-parameter sweeps: ``dialogsum sweep`` and ``Summarizer.sweep``.

A sweep trains trials with settings drawn from a search space (:mod:`dialogsum.sweep.space`),
scores each on validation data at rungs of training steps, stops poor ones early, and keeps
the best as a run folder. The Optuna engine (:mod:`dialogsum.sweep.local`) runs trials on this
machine; the Ray Tune engine (:mod:`dialogsum.sweep.ray_tune`) on a Ray cluster. Nothing is
imported here, so the command line stays light.
"""
