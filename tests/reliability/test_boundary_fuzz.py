"""The input-boundary fuzz property of tests/unit/test_boundary_fuzz.py, run long:
1,500 generated packets for the line screen and 200 through the pipeline (times
RELIABILITY_SCALE: tests/reliability/scale.py) instead of the unit run's few dozen."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.reliability.scale import examples
from tests.unit.test_boundary_fuzz import (
    check_every_line_has_one_fate,
    check_through_the_pipeline,
    packets,
    pipeline_packets,
)


@settings(
    max_examples=examples(1500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(packets)
def test_every_line_has_one_fate_whatever_the_bytes_long_run(packet):
    check_every_line_has_one_fate(packet)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pipeline_packets)
def test_through_the_pipeline_long_run(packet):
    check_through_the_pipeline(**packet)
