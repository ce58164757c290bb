-- The analysts' warehouse: the Sales, Purchases and Payments stars (docs/design.md#tables).
--
-- Every column the processor writes is here with the type its Parquet carries
-- (int = int32, numeric(10,2) = decimal128(10,2), date = date32, time = time64[us],
-- varchar = string, boolean = bool) and NOT NULL unless the contract says null;
-- tests/warehouse/test_schema.py holds the two to each other. The record ids
-- (sales_record_id, purchase_record_id, payment_record_id) are the warehouse's own
-- SERIALs, never written by the processor. Dimensions are upserted by their key,
-- facts appended (sandbox/warehouse.py); every foreign key below is enforced.

-- Shared dimensions -----------------------------------------------------------

CREATE TABLE dim_date (
    date_id      date    PRIMARY KEY,
    year         int     NOT NULL,
    month        int     NOT NULL,
    day          int     NOT NULL,
    day_of_week  int     NOT NULL,  -- ISO: Monday = 1 ... Sunday = 7
    day_name     varchar NOT NULL,
    month_name   varchar NOT NULL,
    quarter      int     NOT NULL
);

CREATE TABLE dim_staff (
    staff_id         int     PRIMARY KEY,
    first_name       varchar NOT NULL,
    last_name        varchar NOT NULL,
    department_name  varchar NOT NULL,
    location         varchar NOT NULL,
    email_address    varchar NOT NULL
);

CREATE TABLE dim_location (
    location_id     int     PRIMARY KEY,  -- the source's address_id
    address_line_1  varchar NOT NULL,
    address_line_2  varchar,
    district        varchar,
    city            varchar NOT NULL,
    postal_code     varchar NOT NULL,
    country         varchar NOT NULL,
    phone           varchar NOT NULL
);

CREATE TABLE dim_currency (
    currency_id    int     PRIMARY KEY,
    currency_code  varchar NOT NULL,
    currency_name  varchar NOT NULL
);

CREATE TABLE dim_counterparty (
    counterparty_id                    int     PRIMARY KEY,
    counterparty_legal_name            varchar NOT NULL,
    counterparty_legal_address_line_1  varchar NOT NULL,
    counterparty_legal_address_line_2  varchar,
    counterparty_legal_district        varchar,
    counterparty_legal_city            varchar NOT NULL,
    counterparty_legal_postal_code     varchar NOT NULL,
    counterparty_legal_country         varchar NOT NULL,
    counterparty_legal_phone_number    varchar NOT NULL
);

-- Sales star ------------------------------------------------------------------

CREATE TABLE dim_design (
    design_id      int     PRIMARY KEY,
    design_name    varchar NOT NULL,
    file_location  varchar NOT NULL,
    file_name      varchar NOT NULL
);

CREATE TABLE fact_sales_order (
    sales_record_id              SERIAL        PRIMARY KEY,
    sales_order_id               int           NOT NULL,
    created_date                 date          NOT NULL REFERENCES dim_date (date_id),
    created_time                 time          NOT NULL,
    last_updated_date            date          NOT NULL REFERENCES dim_date (date_id),
    last_updated_time            time          NOT NULL,
    sales_staff_id               int           NOT NULL REFERENCES dim_staff (staff_id),
    counterparty_id              int           NOT NULL REFERENCES dim_counterparty (counterparty_id),
    units_sold                   int           NOT NULL,
    unit_price                   numeric(10,2) NOT NULL,
    currency_id                  int           NOT NULL REFERENCES dim_currency (currency_id),
    design_id                    int           NOT NULL REFERENCES dim_design (design_id),
    agreed_payment_date          date          NOT NULL REFERENCES dim_date (date_id),
    agreed_delivery_date         date          NOT NULL REFERENCES dim_date (date_id),
    agreed_delivery_location_id  int           NOT NULL REFERENCES dim_location (location_id)
);

-- Purchases star --------------------------------------------------------------

CREATE TABLE fact_purchase_order (
    purchase_record_id           SERIAL        PRIMARY KEY,
    purchase_order_id            int           NOT NULL,
    created_date                 date          NOT NULL REFERENCES dim_date (date_id),
    created_time                 time          NOT NULL,
    last_updated_date            date          NOT NULL REFERENCES dim_date (date_id),
    last_updated_time            time          NOT NULL,
    staff_id                     int           NOT NULL REFERENCES dim_staff (staff_id),
    counterparty_id              int           NOT NULL REFERENCES dim_counterparty (counterparty_id),
    item_code                    varchar       NOT NULL,
    item_quantity                int           NOT NULL,
    item_unit_price              numeric(10,2) NOT NULL,
    currency_id                  int           NOT NULL REFERENCES dim_currency (currency_id),
    agreed_delivery_date         date          NOT NULL REFERENCES dim_date (date_id),
    agreed_payment_date          date          NOT NULL REFERENCES dim_date (date_id),
    agreed_delivery_location_id  int           NOT NULL REFERENCES dim_location (location_id)
);

-- Payments star ---------------------------------------------------------------

CREATE TABLE dim_transaction (
    transaction_id     int     PRIMARY KEY,
    transaction_type   varchar NOT NULL,  -- SALE or PURCHASE
    -- Plain columns, not foreign keys: exactly one of the two is set.
    sales_order_id     int,
    purchase_order_id  int,
    CONSTRAINT dim_transaction_one_order
        CHECK ((sales_order_id IS NULL) <> (purchase_order_id IS NULL))
);

CREATE TABLE dim_payment_type (
    payment_type_id    int     PRIMARY KEY,
    payment_type_name  varchar NOT NULL
);

CREATE TABLE fact_payment (
    payment_record_id  SERIAL        PRIMARY KEY,
    payment_id         int           NOT NULL,
    created_date       date          NOT NULL REFERENCES dim_date (date_id),
    created_time       time          NOT NULL,
    last_updated_date  date          NOT NULL REFERENCES dim_date (date_id),
    last_updated_time  time          NOT NULL,
    transaction_id     int           NOT NULL REFERENCES dim_transaction (transaction_id),
    counterparty_id    int           NOT NULL REFERENCES dim_counterparty (counterparty_id),
    payment_amount     numeric(10,2) NOT NULL,
    currency_id        int           NOT NULL REFERENCES dim_currency (currency_id),
    payment_type_id    int           NOT NULL REFERENCES dim_payment_type (payment_type_id),
    paid               boolean       NOT NULL,
    payment_date       date          NOT NULL REFERENCES dim_date (date_id)
);
