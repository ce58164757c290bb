"""The replay property of tests/unit/test_replay_properties.py, run long:
150 interleavings (times RELIABILITY_SCALE: tests/reliability/scale.py) of fact packets,
corrections, re-sends and late staff instead of a dozen."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.reliability.scale import examples
from tests.unit.test_replay_properties import check_the_newest_truth, runs


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_the_last_row_of_every_version_is_the_newest_packets_content_long_run(run):
    check_the_newest_truth(run)
