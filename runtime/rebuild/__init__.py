"""Rebuilding the whole warehouse from its ingestion history (docs/design.md#rebuild).

plan (runtime.rebuild.plan) → dimensions in order → fact packets staged in parallel
(runtime.rebuild.staging, one Distributed Map item each) → an ordered commit through the
one commit path (runtime.rebuild.commit) → a report (runtime.rebuild.report). The steps
are runtime.rebuild.steps; the Lambda entry point in rebuild mode is runtime.rebuild.entry.
"""
