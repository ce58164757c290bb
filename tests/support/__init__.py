"""Test support shared by every suite: the harness that drives the pipeline over
in-memory ports (harness.py), those fakes (fakes.py), the kill-sweep sampling (sweep.py)."""
