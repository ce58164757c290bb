-- Sales star, in Athena (the views of the Glue database): sales per currency per month.
-- The same question as ../sales_per_currency_per_month.sql, in Trino's dialect: the
-- latest version of each order counts, in the month it was created.
WITH latest AS (
    SELECT *
    FROM (
        SELECT s.*,
               row_number() OVER (
                   PARTITION BY sales_order_id
                   ORDER BY last_updated_date DESC, last_updated_time DESC
               ) AS newest_first
        FROM fact_sales_order s
    )
    WHERE newest_first = 1
)
SELECT c.currency_code,
       d.year,
       d.month,
       d.month_name,
       count(*)                          AS orders,
       sum(s.units_sold)                 AS units_sold,
       sum(s.units_sold * s.unit_price)  AS sales_value
FROM latest s
JOIN dim_currency c ON c.currency_id = s.currency_id
JOIN dim_date d     ON d.date_id = s.created_date
GROUP BY c.currency_code, d.year, d.month, d.month_name
ORDER BY c.currency_code, d.year, d.month
