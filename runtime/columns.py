"""The output tables' columns: the one declaration of each warehouse table's columns, in
order, with their types, nullability and (dimensions and dim_date) the unique key the
loader upserts by (docs/design.md#tables).

The Parquet (Arrow) schemas the runtime writes and the pandera schemas it validates
with are derived from this (runtime/star/schema.py), and so are the Glue tables and
Athena views the stack declares (cdk_app/athena_views.py, docs/design.md#catalog).

Pure data: no pandas, no pyarrow, no pandera, so the CDK app can read it at synth.
A type is written as the Arrow type prints itself (`str(pa.int32()) == "int32"`),
which is what the Parquet files carry; the derivation checks that it round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.tables import CALENDAR, FACT, OUTPUT_TABLES, OUTPUTS

INT32 = "int32"
DATE = "date32[day]"
TIME = "time64[us]"  # microseconds since midnight
TEXT = "string"
BOOL = "bool"
MONEY = "decimal128(10, 2)"  # numeric(10,2)


@dataclass(frozen=True)
class Column:
    """An output column: its name, its type (the Arrow type's text) and whether it may be null."""

    name: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class Columns:
    """An output table's columns in the order the Parquet and the warehouse have them,
    and the column unique per packet (a dimension's key; a fact has none)."""

    columns: tuple[Column, ...]
    key: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(*columns: tuple) -> tuple[Column, ...]:
    return tuple(Column(*c) for c in columns)


_AUDIT = _cols(("created_date", DATE), ("created_time", TIME), ("last_updated_date", DATE),
               ("last_updated_time", TIME))
_ADDRESS_TAIL = _cols(("city", TEXT), ("postal_code", TEXT), ("country", TEXT), ("phone", TEXT))

_DECLARED: dict[str, Columns] = {
    "dim_date": Columns(
        _cols(
            ("date_id", DATE), ("year", INT32), ("month", INT32), ("day", INT32), ("day_of_week", INT32),
            ("day_name", TEXT), ("month_name", TEXT), ("quarter", INT32),
        ),
        key="date_id",
    ),
    "dim_staff": Columns(
        _cols(
            ("staff_id", INT32), ("first_name", TEXT), ("last_name", TEXT), ("department_name", TEXT),
            ("location", TEXT), ("email_address", TEXT),
        ),
        key="staff_id",
    ),
    "dim_location": Columns(
        _cols(
            ("location_id", INT32), ("address_line_1", TEXT), ("address_line_2", TEXT, True),
            ("district", TEXT, True),
        ) + _ADDRESS_TAIL,
        key="location_id",
    ),
    "dim_currency": Columns(
        _cols(("currency_id", INT32), ("currency_code", TEXT), ("currency_name", TEXT)), key="currency_id"
    ),
    "dim_design": Columns(
        _cols(("design_id", INT32), ("design_name", TEXT), ("file_location", TEXT), ("file_name", TEXT)),
        key="design_id",
    ),
    "dim_counterparty": Columns(
        _cols(
            ("counterparty_id", INT32), ("counterparty_legal_name", TEXT),
            ("counterparty_legal_address_line_1", TEXT), ("counterparty_legal_address_line_2", TEXT, True),
            ("counterparty_legal_district", TEXT, True), ("counterparty_legal_city", TEXT),
            ("counterparty_legal_postal_code", TEXT), ("counterparty_legal_country", TEXT),
            ("counterparty_legal_phone_number", TEXT),
        ),
        key="counterparty_id",
    ),
    "dim_transaction": Columns(
        _cols(
            ("transaction_id", INT32), ("transaction_type", TEXT), ("sales_order_id", INT32, True),
            ("purchase_order_id", INT32, True),
        ),
        key="transaction_id",
    ),
    "dim_payment_type": Columns(
        _cols(("payment_type_id", INT32), ("payment_type_name", TEXT)), key="payment_type_id"
    ),
    # Facts: every version of a row; (id, last_updated) is screened per packet, not a key.
    "fact_sales_order": Columns(
        _cols(("sales_order_id", INT32)) + _AUDIT + _cols(
            ("sales_staff_id", INT32), ("counterparty_id", INT32), ("units_sold", INT32), ("unit_price", MONEY),
            ("currency_id", INT32), ("design_id", INT32), ("agreed_payment_date", DATE),
            ("agreed_delivery_date", DATE), ("agreed_delivery_location_id", INT32),
        )
    ),
    "fact_purchase_order": Columns(
        _cols(("purchase_order_id", INT32)) + _AUDIT + _cols(
            ("staff_id", INT32), ("counterparty_id", INT32), ("item_code", TEXT), ("item_quantity", INT32),
            ("item_unit_price", MONEY), ("currency_id", INT32), ("agreed_delivery_date", DATE),
            ("agreed_payment_date", DATE), ("agreed_delivery_location_id", INT32),
        )
    ),
    "fact_payment": Columns(
        _cols(("payment_id", INT32)) + _AUDIT + _cols(
            ("transaction_id", INT32), ("counterparty_id", INT32), ("payment_amount", MONEY),
            ("currency_id", INT32), ("payment_type_id", INT32), ("paid", BOOL), ("payment_date", DATE),
        )
    ),
}


def _checked(declared: dict[str, Columns]) -> dict[str, Columns]:
    """In the loader's order; every output table declared once, a key where one is due."""
    if set(declared) != set(OUTPUT_TABLES):
        raise ValueError(f"columns declared for {sorted(declared)}, output tables are {sorted(OUTPUT_TABLES)}")
    for name, table in declared.items():
        keyed = OUTPUTS[name].kind != FACT
        if keyed != (table.key is not None) or (keyed and table.key not in table.names):
            raise ValueError(f"{name}: a dimension (or {CALENDAR}) needs one key among its columns, a fact none")
        if len(set(table.names)) != len(table.names):
            raise ValueError(f"{name}: a column declared twice")
    return {name: declared[name] for name in OUTPUT_TABLES}


OUTPUT_COLUMNS: dict[str, Columns] = _checked(_DECLARED)
