"""The rebuild (runtime.rebuild) over in-memory ports: the same warehouse as the live
pipeline processing the same history packet by packet (docs/design.md#rebuild)."""

from __future__ import annotations

import json
import random
from collections import defaultdict


from runtime import keys
from runtime.observability import Metrics
from runtime.parquet import from_parquet
from runtime.rebuild import steps
from runtime.rebuild.report import REPORT_KEY
from runtime.records import CommitRecord
from runtime.tables import DIMENSIONS, FACTS, OUTPUT_TABLES, packet_id_parameters
from tests.support.fakes import MemoryBucket, MemoryPacketIds, SimulatedKill, Writes
from tests.support.harness import Harness, sales_order, staff

TARGET_PREFIX = "/totesys/processing/gen2"


class Rebuild:
    """A rebuild target (its own bucket and ids) over a harness's ingestion bucket."""

    def __init__(self, ingestion: MemoryBucket, kill_after: int | None = None) -> None:
        self.writes = Writes(kill_after)
        self.store = MemoryBucket(self.writes)
        self.ids = MemoryPacketIds(packet_id_parameters(TARGET_PREFIX), self.writes)
        self.ingestion = ingestion

    def target(self) -> steps.Target:
        return steps.Target(self.ingestion, self.store, self.ids, TARGET_PREFIX, Metrics())

    def run(self, *, seed: int = 0, batch: int = 2, per_call: int = 2, kills: tuple[int, ...] = ()) -> dict:
        """The workflow's steps, as Step Functions would call them: items staged in a
        shuffled order, in batches; each kill after the n-th write of a step, then the
        step retried (a fresh "process"). Returns the report."""
        rng = random.Random(seed)
        kills = list(kills)

        def attempt(step):
            while True:
                if kills:
                    self.writes.count, self.writes.kill_after = 0, kills.pop(0)
                try:
                    return step()
                except SimulatedKill:
                    continue
                finally:
                    self.writes.kill_after = None

        planned = attempt(lambda: steps.plan(self.target()))
        while not attempt(lambda: steps.dimensions(self.target(), steps.Budget(lambda: 1e9, 0, per_call)))[
            "dimensions_done"
        ]:
            pass
        items = list(planned["items"])
        rng.shuffle(items)
        for i in range(0, len(items), batch):
            attempt(lambda: steps.stage_items(self.target(), items[i : i + batch]))
        while not attempt(lambda: steps.commit(self.target(), steps.Budget(lambda: 1e9, 0, per_call)))[
            "commit_done"
        ]:
            pass
        return attempt(lambda: steps.report(self.target()))


# -- what a warehouse holds -------------------------------------------------------------


def outputs(store: MemoryBucket, table: str) -> list[list[dict]]:
    """Every output packet of `table`, in packet number order, as rows."""
    found = sorted(store.list_keys(f"{table}/"), key=lambda k: int(k.split("_packet_")[1].split("_")[0]))
    return [from_parquet(store.read(k)).to_pylist() for k in found]


def current_rows(store: MemoryBucket, table: str) -> dict:
    """What the loader leaves in a dimension: the last row of each key."""
    first = "date_id" if table == "dim_date" else None
    rows = {}
    for packet in outputs(store, table):
        for row in packet:
            rows[row[first or next(iter(row))]] = row
    return rows


def fact_versions(store: MemoryBucket, table: str) -> dict:
    """Each fact version (id, last_updated) → its rows' contents, in warehouse order."""
    versions = defaultdict(list)
    for packet in outputs(store, table):
        for row in packet:
            versions[(next(iter(row.values())), row["last_updated_date"], row["last_updated_time"])].append(row)
    return versions


def open_rejections(store: MemoryBucket) -> list:
    """Rows rejected for reasons of their own, wherever they sit, and rows still
    waiting (in no file a replay has taken), without the bookkeeping of where they
    sit, came from or began to wait."""
    taken = set()
    for key in store.list_keys(keys.REPLAY_COMMITS):
        taken |= set(CommitRecord.from_json(key, store.read(key)).replayed or ())
    found = []
    for key in store.list_keys(keys.QUARANTINE):
        table = key.split("/")[1]
        for line in store.read(key).splitlines():
            row = json.loads(line)
            if "_waits_for" in row and key in taken:
                continue  # offered again by a replay: its fate is in a later file
            for bookkeeping in ("_object", "_line", "_length", "_packet", "_waiting_in"):
                row.pop(bookkeeping, None)
            found.append((table, json.dumps(row, sort_keys=True)))
    return sorted(found)


def assert_same_warehouse(live: MemoryBucket, rebuilt: MemoryBucket, report: dict) -> None:
    for dim in DIMENSIONS:
        assert current_rows(rebuilt, dim.name) == current_rows(live, dim.name), dim.name
    assert current_rows(rebuilt, "dim_date") == current_rows(live, "dim_date")
    listed = report["history_rows_a_live_run_may_not_hold"]
    for fact in FACTS:
        got, want = fact_versions(rebuilt, fact.name), fact_versions(live, fact.name)
        assert set(got) == set(want), fact.name
        for version, rows in want.items():
            assert got[version][-1] == rows[-1], (fact.name, version)  # the newest content
            if got[version] != rows:
                # Only where a live run resolved a waiting row as superseded.
                assert version[0] in listed.get(fact.source, ()), (fact.name, version)
    assert open_rejections(rebuilt) == open_rejections(live)


def assert_gapless(store: MemoryBucket, ids: MemoryPacketIds, prefix: str) -> None:
    referenced = set()
    for key in store.list_keys(keys.COMMITS):
        record = CommitRecord.from_json(key, store.read(key))
        referenced |= {o.key for o in record.outputs}
    for table in OUTPUT_TABLES:
        found = store.list_keys(f"{table}/")
        numbers = sorted(int(k.split("_packet_")[1].split("_")[0]) for k in found)
        assert numbers == list(range(1, len(numbers) + 1)), (table, numbers)
        assert ids.values[f"{prefix}/produced/{table}"] == len(numbers), table
        assert set(found) <= referenced, f"orphan outputs of {table}"


# -- a small history, by hand -----------------------------------------------------------


def small_history() -> Harness:
    """Three rounds: a fact waiting for a staff member who comes later, a re-send, a
    silent mutation, a renamed staff member, and a sales_order packet with no objects."""
    h = Harness()
    h.upload_dimensions(1)
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2)])
    h.invoke(*(f"{t}:1" for t in ("currency", "design", "address", "department", "counterparty", "staff")),
             "sales_order:1")
    h.upload("staff", 2, [staff(2, first="Ann", updated="2022-11-04T10:00:00")])
    h.invoke("staff:2")
    # sales_order:2 never arrives; 3 re-sends order 1, changes order 2 silently, adds 3.
    h.upload("sales_order", 3, [sales_order(1), sales_order(2, staff_id=2, units_sold=7), sales_order(3)])
    h.upload("staff", 3, [staff(1, first="Jem", updated="2022-11-05T10:00:00")])
    h.invoke("staff:3", "sales_order:3")
    return h


def test_a_rebuild_gives_the_live_warehouse_of_a_small_history():
    live = small_history()
    rebuild = Rebuild(live.ingestion)
    report = rebuild.run()
    assert_same_warehouse(live.processed, rebuild.store, report)
    assert_gapless(rebuild.store, rebuild.ids, TARGET_PREFIX)
    assert report["passed_over"] == ["sales_order:2"]
    assert rebuild.store.read(REPORT_KEY) is not None


def superseded_history() -> Harness:
    """A row waits for staff 2; a later packet writes its version changed; then staff 2."""
    h = Harness()
    h.upload_dimensions(1)
    h.upload("sales_order", 1, [sales_order(5, staff_id=2)])  # waits for staff 2
    h.invoke(*(f"{t}:1" for t in ("currency", "design", "address", "department", "counterparty", "staff")),
             "sales_order:1")
    h.upload("sales_order", 2, [sales_order(5, staff_id=1)])  # the same version, changed: written
    h.invoke("sales_order:2")
    h.upload("staff", 2, [staff(2, first="Ann", updated="2022-11-04T10:00:00")])
    h.invoke("staff:2")  # the waiting row is offered again: superseded (docs/design.md#waits-and-replays)
    return h


def test_a_row_a_live_run_resolves_as_superseded_is_a_listed_history_row():
    h = superseded_history()
    rebuild = Rebuild(h.ingestion)
    report = rebuild.run()
    assert report["history_rows_a_live_run_may_not_hold"] == {"sales_order": [5]}
    [version] = fact_versions(rebuild.store, "fact_sales_order").values()
    assert [r["sales_staff_id"] for r in version] == [2, 1]  # a history row, then the newest


def test_the_superseded_case_matches_the_live_run_but_for_the_listed_row():
    h = superseded_history()
    [version] = fact_versions(h.processed, "fact_sales_order").values()
    assert [r["sales_staff_id"] for r in version] == [1]  # the live run: superseded, never written
    rebuild = Rebuild(h.ingestion)
    assert_same_warehouse(h.processed, rebuild.store, rebuild.run())


# -- the fixture history, cut into many packets -------------------------------------------


def fixture_history(cuts: dict[str, int]) -> Harness:
    """Every fixture table cut into packets (payments as their unpaid, then their paid
    versions, each cut too); ingestion run k brings packet k of each table, and the
    live pipeline processes each run as it comes."""
    from sandbox.seed import fixture_lines, packet_key, payment_versions, split
    from runtime.tables import SOURCE_TABLES

    h = Harness()
    packets = {s.name: split(fixture_lines(s.name), cuts.get(s.name, 1)) for s in SOURCE_TABLES}
    unpaid, paid = payment_versions(fixture_lines("payment"))
    packets["payment"] = split(unpaid, cuts["payment"]) + split(paid, cuts["payment"])
    runs = max(len(p) for p in packets.values())
    for k in range(1, runs + 1):
        named = []
        for table, parts in packets.items():
            if k <= len(parts):
                h.ingestion.put(packet_key(table, k, parts[k - 1]), b"".join(parts[k - 1]))
                named.append(f"{table}:{k}")
        h.invoke(*named)
    return h


def test_a_rebuild_of_the_fixture_history_gives_the_live_warehouse():
    live = fixture_history({"design": 3, "staff": 2, "counterparty": 2, "transaction": 4, "sales_order": 6,
                            "purchase_order": 3, "payment": 3})
    rebuild = Rebuild(live.ingestion)
    report = rebuild.run(seed=7, batch=3, per_call=4, kills=(3, 0, 5, 2, 0, 9, 4))
    assert_same_warehouse(live.processed, rebuild.store, report)
    assert_gapless(rebuild.store, rebuild.ids, TARGET_PREFIX)
    assert report["written"]["fact_sales_order"]["rows"] == 11_175
    assert report["written"]["fact_payment"]["rows"] == 15_836 + 9_648
    assert report["source_packets"]["sales_order"] == 6


# -- the switch-over, rehearsed ---------------------------------------------------------------


def test_switching_the_live_pipeline_to_the_rebuilt_generation_and_catching_up():
    """Rebuild H1 into a new generation; switch; the live pipeline, now on the new
    generation, catches up on H2 (written by the ingestion meanwhile): the warehouse of
    processing H1 and H2 packet by packet. The old generation stays as it was."""
    from runtime.pipeline import Pipeline
    from runtime.events import parse_event
    from runtime.rebuild.switch import switch_ids, switched_key
    from tests.support.harness import PREFIX

    def h2(h: Harness) -> None:
        h.upload("staff", 4, [staff(3, first="Cy", updated="2022-11-06T10:00:00")])
        h.upload("sales_order", 4, [sales_order(7, staff_id=3), sales_order(1, units_sold=9)])

    reference = small_history()  # H1, then H2, packet by packet on one generation
    h2(reference)
    reference.invoke("staff:4", "sales_order:4")

    live = small_history()  # the old generation, processed live through H1
    rebuild = Rebuild(live.ingestion)
    rebuild.run()  # meanwhile
    old_objects = dict(live.processed.objects)
    # One store of ids for both prefixes, as SSM holds them.
    ids = live.ids
    ids.values.update(rebuild.ids.values)

    def write(values):
        ids.values.update(values)

    switch_ids(old_store=live.processed, new_store=rebuild.store, new_bucket="totesys-dev-generation-g2", ids=ids,
               live_prefix=PREFIX, generation_prefix=TARGET_PREFIX, write=write)
    assert live.processed.objects.keys() - old_objects.keys() == {switched_key("totesys-dev-generation-g2")}
    h2(live)  # the ingestion wrote on; the live function, now on the new generation, catches up
    Pipeline(live.ingestion, rebuild.store, ids, PREFIX, Metrics()).run(
        parse_event({"packets": [{"table": "staff", "id": 4}, {"table": "sales_order", "id": 4}]})
    )
    assert_same_warehouse(reference.processed, rebuild.store, json.loads(rebuild.store.read(REPORT_KEY)))
    assert_gapless(rebuild.store, ids, PREFIX)
    # The old generation is whole, and its ids are recorded for a way back.
    assert {k: v for k, v in live.processed.objects.items() if k in old_objects} == old_objects
    record = json.loads(live.processed.read(switched_key("totesys-dev-generation-g2")))
    assert record["ids_before"][f"{PREFIX}/consumed/sales_order"] == 3
