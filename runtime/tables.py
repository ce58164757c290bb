"""The table graph: the one declaration of the totesys source tables, the warehouse's
output tables and the edges between them.

Declared here, once: each source table's columns and key; each output table's source,
what it joins (a dimension row and its parent: an unknown parent quarantines the row,
and a change of the parent re-emits it), what a fact refers to, and which of a fact's
dates dim_date must hold. Everything else is derived below, never retyped: each
source's outputs, the processing (dependency) order, the states a transform reads, the
fact references and what a quarantined fact waits for, the loader's order, the SSM
parameter names and so the CDK stack's parameters. Adding a star is adding
declarations here, the output tables' columns in runtime/columns.py and builders in
runtime/star/.

Pure data: no pandas, no pyarrow, so the CDK app can import it. (Over 300 lines: the
declarations of eleven source and eleven output tables, then a few derivations.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Column kinds of the source rows, as the ingestion writes them (JSON lines).
INT = "int"
TEXT = "text"
TIMESTAMP = "timestamp"  # ISO text, naive UTC, optional fraction, 'T' or ' '
DATE = "date"  # ISO date text
DECIMAL = "decimal"  # JSON number or decimal string
BOOL = "bool"  # JSON true / false

DIMENSION, FACT, CALENDAR = "dimension", "fact", "calendar"


@dataclass(frozen=True)
class Join:
    """A dimension row takes columns from its parent: `column` of the row is the key
    of source table `parent`."""

    column: str
    parent: str


@dataclass(frozen=True)
class Reference:
    """A fact's foreign key: its output `column` is a key of dimension `dimension`."""

    column: str
    dimension: str


@dataclass(frozen=True)
class OutputTable:
    """A table of the analysts' warehouse."""

    name: str
    kind: str  # DIMENSION, FACT or CALENDAR (dim_date, derived from the facts' dates)
    source: str | None = None  # the source table whose rows become its rows, keyed alike
    joins: tuple[Join, ...] = ()  # dimensions: parents joined into each row
    references: tuple[Reference, ...] = ()  # facts: dimensions referred to
    dates: tuple[str, ...] = ()  # facts: date columns whose values dim_date must hold


@dataclass(frozen=True)
class SourceTable:
    """A totesys table this processor consumes. Declared with name, key and columns;
    `outputs` and `keeps_state` are filled in from the output declarations."""

    name: str
    key: str
    columns: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...] = ()  # own outputs first, then those it re-emits, dim_date last
    # Dimension sources keep their latest row per key (the state) for joins and
    # re-emission; fact sources are append-only history and keep none.
    keeps_state: bool = True

    @property
    def primary_output(self) -> str:
        """The output table that rows of this source are quarantined under."""
        return self.outputs[0]


_AUDIT = (("created_at", TIMESTAMP), ("last_updated", TIMESTAMP))

# Declaration order is the tie-break of the dependency order (derived below).
_SOURCES: tuple[SourceTable, ...] = (
    SourceTable("currency", "currency_id", (("currency_id", INT), ("currency_code", TEXT), *_AUDIT)),
    SourceTable(
        "design",
        "design_id",
        (("design_id", INT), ("design_name", TEXT), ("file_location", TEXT), ("file_name", TEXT), *_AUDIT),
    ),
    SourceTable(
        "address",
        "address_id",
        (
            ("address_id", INT), ("address_line_1", TEXT), ("address_line_2", TEXT), ("district", TEXT),
            ("city", TEXT), ("postal_code", TEXT), ("country", TEXT), ("phone", TEXT), *_AUDIT,
        ),
    ),
    SourceTable(
        "department",
        "department_id",
        (("department_id", INT), ("department_name", TEXT), ("location", TEXT), ("manager", TEXT), *_AUDIT),
    ),
    SourceTable(
        "counterparty",
        "counterparty_id",
        (
            ("counterparty_id", INT), ("counterparty_legal_name", TEXT), ("legal_address_id", INT),
            ("commercial_contact", TEXT), ("delivery_contact", TEXT), *_AUDIT,
        ),
    ),
    SourceTable(
        "staff",
        "staff_id",
        (
            ("staff_id", INT), ("first_name", TEXT), ("last_name", TEXT), ("department_id", INT),
            ("email_address", TEXT), *_AUDIT,
        ),
    ),
    SourceTable("payment_type", "payment_type_id", (("payment_type_id", INT), ("payment_type_name", TEXT), *_AUDIT)),
    SourceTable(
        "transaction",
        "transaction_id",
        (
            ("transaction_id", INT), ("transaction_type", TEXT), ("sales_order_id", INT),
            ("purchase_order_id", INT), *_AUDIT,
        ),
    ),
    SourceTable(
        "sales_order",
        "sales_order_id",
        (
            ("sales_order_id", INT), *_AUDIT, ("design_id", INT), ("staff_id", INT), ("counterparty_id", INT),
            ("units_sold", INT), ("unit_price", DECIMAL), ("currency_id", INT), ("agreed_delivery_date", DATE),
            ("agreed_payment_date", DATE), ("agreed_delivery_location_id", INT),
        ),
    ),
    SourceTable(
        "purchase_order",
        "purchase_order_id",
        (
            ("purchase_order_id", INT), *_AUDIT, ("staff_id", INT), ("counterparty_id", INT),
            ("item_code", TEXT), ("item_quantity", INT), ("item_unit_price", DECIMAL), ("currency_id", INT),
            ("agreed_delivery_date", DATE), ("agreed_payment_date", DATE), ("agreed_delivery_location_id", INT),
        ),
    ),
    SourceTable(
        "payment",
        "payment_id",
        (
            ("payment_id", INT), *_AUDIT, ("transaction_id", INT), ("counterparty_id", INT),
            ("payment_amount", DECIMAL), ("currency_id", INT), ("payment_type_id", INT), ("paid", BOOL),
            ("payment_date", DATE),
            # Read (so they are no schema drift) but not written: the DDL has no place for them.
            ("company_ac_number", INT), ("counterparty_ac_number", INT),
        ),
    ),
)

_AUDIT_DATES = ("created_date", "last_updated_date")
_SHARED = (
    Reference("counterparty_id", "dim_counterparty"),
    Reference("currency_id", "dim_currency"),
)

# The three stars. Declaration order is the tie-break of the loader's order.
_OUTPUTS: tuple[OutputTable, ...] = (
    OutputTable("dim_date", CALENDAR),
    OutputTable("dim_staff", DIMENSION, "staff", joins=(Join("department_id", "department"),)),
    OutputTable("dim_location", DIMENSION, "address"),
    OutputTable("dim_currency", DIMENSION, "currency"),
    OutputTable("dim_design", DIMENSION, "design"),
    OutputTable("dim_counterparty", DIMENSION, "counterparty", joins=(Join("legal_address_id", "address"),)),
    OutputTable("dim_transaction", DIMENSION, "transaction"),
    OutputTable("dim_payment_type", DIMENSION, "payment_type"),
    OutputTable(
        "fact_sales_order",
        FACT,
        "sales_order",
        references=(
            Reference("sales_staff_id", "dim_staff"), *_SHARED, Reference("design_id", "dim_design"),
            Reference("agreed_delivery_location_id", "dim_location"),
        ),
        dates=(*_AUDIT_DATES, "agreed_payment_date", "agreed_delivery_date"),
    ),
    OutputTable(
        "fact_purchase_order",
        FACT,
        "purchase_order",
        references=(
            Reference("staff_id", "dim_staff"), *_SHARED, Reference("agreed_delivery_location_id", "dim_location"),
        ),
        dates=(*_AUDIT_DATES, "agreed_delivery_date", "agreed_payment_date"),
    ),
    OutputTable(
        "fact_payment",
        FACT,
        "payment",
        references=(
            Reference("transaction_id", "dim_transaction"), *_SHARED,
            Reference("payment_type_id", "dim_payment_type"),
        ),
        dates=(*_AUDIT_DATES, "payment_date"),
    ),
)

OUTPUTS: dict[str, OutputTable] = {o.name: o for o in _OUTPUTS}
FACTS: tuple[OutputTable, ...] = tuple(o for o in _OUTPUTS if o.kind == FACT)
DIMENSIONS: tuple[OutputTable, ...] = tuple(o for o in _OUTPUTS if o.kind == DIMENSION)
CALENDAR_TABLE: str = next(o.name for o in _OUTPUTS if o.kind == CALENDAR)


# -- derived ----------------------------------------------------------------------


def _topological(names: list[str], after: dict[str, set[str]]) -> tuple[str, ...]:
    """Every name after the names it depends on; among the ready ones, the first declared."""
    done: list[str] = []
    while len(done) < len(names):
        ready = [n for n in names if n not in done and after[n] <= set(done)]
        if not ready:
            raise ValueError(f"the table graph has a cycle among {sorted(set(names) - set(done))}")
        done.append(ready[0])
    return tuple(done)


def _source_outputs(source: str) -> tuple[str, ...]:
    own = [o.name for o in _OUTPUTS if o.source == source]
    re_emitted = [o.name for o in DIMENSIONS if any(j.parent == source for j in o.joins)]
    dated = [CALENDAR_TABLE] if any(f.source == source for f in FACTS) else []
    return tuple(own + re_emitted + dated)


def _depends_on(source: str) -> set[str]:
    """The sources whose rows this source's rows join or refer to."""
    needed = set()
    for out in _OUTPUTS:
        if out.source == source:
            needed |= {j.parent for j in out.joins}
            needed |= {OUTPUTS[r.dimension].source for r in out.references}
    return needed


_BY_NAME = {s.name: s for s in _SOURCES}
_ORDER = _topological([s.name for s in _SOURCES], {s.name: _depends_on(s.name) for s in _SOURCES})

# In dependency order: a table comes after every table its outputs join with or refer to.
SOURCE_TABLES: tuple[SourceTable, ...] = tuple(
    replace(
        _BY_NAME[name],
        outputs=_source_outputs(name),
        keeps_state=not any(f.source == name for f in FACTS),
    )
    for name in _ORDER
)
SOURCES: dict[str, SourceTable] = {t.name: t for t in SOURCE_TABLES}
DEPENDENCY_ORDER: dict[str, int] = {t.name: i for i, t in enumerate(SOURCE_TABLES)}

# The output tables in the order the loader loads them: every table after the tables
# its foreign keys point at (dim_date and the dimensions before the facts).
OUTPUT_TABLES: tuple[str, ...] = _topological(
    [o.name for o in _OUTPUTS],
    {
        o.name: {r.dimension for r in o.references} | ({CALENDAR_TABLE} if o.dates else set())
        for o in _OUTPUTS
    },
)

FACT_OF_SOURCE: dict[str, OutputTable] = {f.source: f for f in FACTS}


def state_inputs(source: str) -> tuple[str, ...]:
    """The committed dimension states a packet of `source` is transformed against (its
    own first, when it keeps one): the sources of every dimension it builds, joins or
    refers to, and their parents."""
    needed: list[str] = [source] if SOURCES[source].keeps_state else []
    for name in SOURCES[source].outputs:
        out = OUTPUTS[name]
        dimensions = [OUTPUTS[r.dimension] for r in out.references] if out.kind == FACT else [out]
        for dim in dimensions if out.kind != CALENDAR else ():
            needed += [dim.source, *(j.parent for j in dim.joins)]
    return tuple(dict.fromkeys(needed))


STATE_INPUTS: dict[str, tuple[str, ...]] = {s.name: state_inputs(s.name) for s in SOURCE_TABLES}

# Which dimension a quarantined fact waits for, by the output table whose rows bring
# it: the source the reference check names (a fact "refers to a known staff").
WAITED_FOR: dict[str, str] = {
    r.dimension: OUTPUTS[r.dimension].source for f in FACTS for r in f.references
}


def consumed_parameter(prefix: str, source_table: str) -> str:
    """SSM name holding the last ingestion packet of `source_table` fully processed."""
    return f"{prefix}/consumed/{source_table}"


def produced_parameter(prefix: str, output_table: str) -> str:
    """SSM name holding the last output packet number committed for `output_table`."""
    return f"{prefix}/produced/{output_table}"


def packet_id_parameters(prefix: str) -> tuple[str, ...]:
    """Every SSM parameter the processor reads and writes, for the stack to create."""
    return tuple(consumed_parameter(prefix, t.name) for t in SOURCE_TABLES) + tuple(
        produced_parameter(prefix, o) for o in OUTPUT_TABLES
    )


DEFAULT_SSM_PREFIX = "/totesys/processing"
