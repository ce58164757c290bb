-- Sales star: sales per currency per month.
-- fact_sales_order keeps every version of an order; the latest version of each order
-- counts, in the month it was created (dim_date through created_date).
WITH latest AS (
    SELECT DISTINCT ON (sales_order_id) *
    FROM fact_sales_order
    ORDER BY sales_order_id, last_updated_date DESC, last_updated_time DESC, sales_record_id DESC
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
ORDER BY c.currency_code, d.year, d.month;
