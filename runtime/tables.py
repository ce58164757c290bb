"""The one declaration of the totesys source tables and the Sales star output tables.

Everything else (event checks, processing order, key layout, SSM parameter names, the
CDK stack's parameters, tests and docs) iterates these declarations instead of
retyping table names. Pure data: no pandas, no pyarrow, so the CDK app can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Column kinds of the source rows, as the ingestion writes them (JSON lines).
INT = "int"
TEXT = "text"
TIMESTAMP = "timestamp"  # ISO text, naive UTC, optional fraction, 'T' or ' '
DATE = "date"  # ISO date text
DECIMAL = "decimal"  # JSON number or decimal string


@dataclass(frozen=True)
class SourceTable:
    """A totesys table this processor consumes."""

    name: str
    key: str
    columns: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...]
    # Dimension sources keep their latest row per key (the state) for joins and
    # re-emission; sales_order is append-only history and keeps none.
    keeps_state: bool = True

    @property
    def primary_output(self) -> str:
        """The output table that rows of this source are quarantined under."""
        return self.outputs[0]


_AUDIT = (("created_at", TIMESTAMP), ("last_updated", TIMESTAMP))

# In dependency order: a table comes after every table its outputs join with.
SOURCE_TABLES: tuple[SourceTable, ...] = (
    SourceTable(
        "currency",
        key="currency_id",
        columns=(("currency_id", INT), ("currency_code", TEXT), *_AUDIT),
        outputs=("dim_currency",),
    ),
    SourceTable(
        "design",
        key="design_id",
        columns=(
            ("design_id", INT),
            ("design_name", TEXT),
            ("file_location", TEXT),
            ("file_name", TEXT),
            *_AUDIT,
        ),
        outputs=("dim_design",),
    ),
    SourceTable(
        "address",
        key="address_id",
        columns=(
            ("address_id", INT),
            ("address_line_1", TEXT),
            ("address_line_2", TEXT),
            ("district", TEXT),
            ("city", TEXT),
            ("postal_code", TEXT),
            ("country", TEXT),
            ("phone", TEXT),
            *_AUDIT,
        ),
        outputs=("dim_location", "dim_counterparty"),
    ),
    SourceTable(
        "department",
        key="department_id",
        columns=(
            ("department_id", INT),
            ("department_name", TEXT),
            ("location", TEXT),
            ("manager", TEXT),
            *_AUDIT,
        ),
        outputs=("dim_staff",),
    ),
    SourceTable(
        "counterparty",
        key="counterparty_id",
        columns=(
            ("counterparty_id", INT),
            ("counterparty_legal_name", TEXT),
            ("legal_address_id", INT),
            ("commercial_contact", TEXT),
            ("delivery_contact", TEXT),
            *_AUDIT,
        ),
        outputs=("dim_counterparty",),
    ),
    SourceTable(
        "staff",
        key="staff_id",
        columns=(
            ("staff_id", INT),
            ("first_name", TEXT),
            ("last_name", TEXT),
            ("department_id", INT),
            ("email_address", TEXT),
            *_AUDIT,
        ),
        outputs=("dim_staff",),
    ),
    SourceTable(
        "sales_order",
        key="sales_order_id",
        columns=(
            ("sales_order_id", INT),
            *_AUDIT,
            ("design_id", INT),
            ("staff_id", INT),
            ("counterparty_id", INT),
            ("units_sold", INT),
            ("unit_price", DECIMAL),
            ("currency_id", INT),
            ("agreed_delivery_date", DATE),
            ("agreed_payment_date", DATE),
            ("agreed_delivery_location_id", INT),
        ),
        outputs=("fact_sales_order", "dim_date"),
        keeps_state=False,
    ),
)

SOURCES: dict[str, SourceTable] = {t.name: t for t in SOURCE_TABLES}

# Tables the ingestion exports that no output consumes yet: named in events, logged,
# left alone.
UNCONSUMED_TABLES: frozenset[str] = frozenset(
    {"payment", "purchase_order", "payment_type", "transaction"}
)

# The analysts' Sales star schema, in the order the loader should load them.
OUTPUT_TABLES: tuple[str, ...] = (
    "dim_date",
    "dim_staff",
    "dim_location",
    "dim_currency",
    "dim_design",
    "dim_counterparty",
    "fact_sales_order",
)

DEPENDENCY_ORDER: dict[str, int] = {t.name: i for i, t in enumerate(SOURCE_TABLES)}


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
