"""The table graph: what is derived from the one declaration, checked against the design (docs/design.md#tables, #ordering)."""

import pytest

from runtime import tables as t

# docs/design.md#tables, #ordering, as written there.
DESIGN_ORDER = [
    "currency", "design", "address", "department", "counterparty", "staff",
    "payment_type", "transaction", "sales_order", "purchase_order", "payment",
]
DESIGN_FEEDS = {  # docs/design.md#input-layout's table of sources and the outputs they feed
    "sales_order": {"fact_sales_order", "dim_date"},
    "purchase_order": {"fact_purchase_order", "dim_date"},
    "payment": {"fact_payment", "dim_date"},
    "transaction": {"dim_transaction"},
    "payment_type": {"dim_payment_type"},
    "design": {"dim_design"},
    "currency": {"dim_currency"},
    "address": {"dim_location", "dim_counterparty"},
    "counterparty": {"dim_counterparty"},
    "department": {"dim_staff"},
    "staff": {"dim_staff"},
}


def test_the_dependency_order_is_designs():
    assert [s.name for s in t.SOURCE_TABLES] == DESIGN_ORDER
    assert t.DEPENDENCY_ORDER == {name: i for i, name in enumerate(DESIGN_ORDER)}


def test_every_source_comes_after_what_it_joins_or_refers_to():
    for out in t.OUTPUTS.values():
        if out.source is None:
            continue
        for parent in [j.parent for j in out.joins] + [t.OUTPUTS[r.dimension].source for r in out.references]:
            assert t.DEPENDENCY_ORDER[parent] < t.DEPENDENCY_ORDER[out.source], (out.name, parent)


def test_each_source_feeds_the_outputs_design_lists():
    assert {s.name: set(s.outputs) for s in t.SOURCE_TABLES} == DESIGN_FEEDS
    assert t.SOURCES["address"].outputs == ("dim_location", "dim_counterparty")  # own first, then re-emitted
    assert {s.name for s in t.SOURCE_TABLES if not s.keeps_state} == {"sales_order", "purchase_order", "payment"}


def test_the_loader_loads_dim_date_and_the_dimensions_before_the_facts():
    assert t.OUTPUT_TABLES == (
        "dim_date", "dim_staff", "dim_location", "dim_currency", "dim_design", "dim_counterparty",
        "dim_transaction", "dim_payment_type", "fact_sales_order", "fact_purchase_order", "fact_payment",
    )


def test_state_inputs_follow_joins_re_emission_and_references():
    assert t.STATE_INPUTS["department"] == ("department", "staff")  # re-emits its staff
    assert t.STATE_INPUTS["address"] == ("address", "counterparty")  # re-emits legal addresses
    assert t.STATE_INPUTS["staff"] == ("staff", "department")
    assert set(t.STATE_INPUTS["payment"]) == {"transaction", "counterparty", "address", "currency", "payment_type"}
    assert set(t.STATE_INPUTS["purchase_order"]) == {"staff", "department", "counterparty", "address", "currency"}
    assert set(t.STATE_INPUTS["sales_order"]) == {"staff", "department", "counterparty", "address", "currency", "design"}


def test_a_fact_waits_for_the_source_behind_each_dimension_it_refers_to():
    assert t.WAITED_FOR == {
        "dim_staff": "staff", "dim_counterparty": "counterparty", "dim_currency": "currency",
        "dim_design": "design", "dim_location": "address", "dim_transaction": "transaction",
        "dim_payment_type": "payment_type",
    }
    assert {f.name: f.dates for f in t.FACTS}["fact_payment"] == ("created_date", "last_updated_date", "payment_date")


def test_the_parameters_are_one_consumed_per_source_and_one_produced_per_output():
    names = t.packet_id_parameters("/p")
    assert names == tuple(f"/p/consumed/{s}" for s in DESIGN_ORDER) + tuple(f"/p/produced/{o}" for o in t.OUTPUT_TABLES)


def test_a_cycle_in_the_graph_is_refused():
    with pytest.raises(ValueError, match="cycle"):
        t._topological(["a", "b"], {"a": {"b"}, "b": {"a"}})
    # Declaration order only breaks ties: a dependency declared later still comes first.
    assert t._topological(["fact", "dim"], {"fact": {"dim"}, "dim": set()}) == ("dim", "fact")


def test_the_readmes_table_of_the_graph_is_the_graph():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line.strip().strip("|").split("|") for line in readme.splitlines() if line.strip().startswith("| ")]
    documented = {}
    for cells in rows:
        cells = [c.strip() for c in cells]
        if cells[0] in t.SOURCES:
            documented[cells[0]] = tuple(o.strip() for o in cells[1].split(","))
    assert list(documented) == [s.name for s in t.SOURCE_TABLES]
    assert documented == {s.name: s.outputs for s in t.SOURCE_TABLES}
