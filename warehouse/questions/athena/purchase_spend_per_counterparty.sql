-- Purchases star, in Athena (the views of the Glue database): purchase spend per
-- counterparty and currency. The same question as ../purchase_spend_per_counterparty.sql,
-- in Trino's dialect: the latest version of each purchase order counts.
WITH latest AS (
    SELECT *
    FROM (
        SELECT p.*,
               row_number() OVER (
                   PARTITION BY purchase_order_id
                   ORDER BY last_updated_date DESC, last_updated_time DESC
               ) AS newest_first
        FROM fact_purchase_order p
    )
    WHERE newest_first = 1
)
SELECT cp.counterparty_legal_name,
       c.currency_code,
       count(*)                                  AS purchase_orders,
       sum(p.item_quantity * p.item_unit_price)  AS spend
FROM latest p
JOIN dim_counterparty cp ON cp.counterparty_id = p.counterparty_id
JOIN dim_currency c      ON c.currency_id = p.currency_id
GROUP BY cp.counterparty_legal_name, c.currency_code
ORDER BY spend DESC, cp.counterparty_legal_name, c.currency_code
