"""Test support shared by every suite: the harness that drives the pipeline over
in-memory ports (harness.py), those fakes (fakes.py), and the one kill sweep
(kill_sweep.py: a Scenario on a Backend from backends.py, its kill points sampled by
sweep.py)."""
