"""Test support shared by every suite: the kill-sweep sampling (sweep.py)."""
