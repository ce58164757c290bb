-- Purchases star: purchase spend per counterparty (and currency: amounts in different
-- currencies are not added up). The latest version of each purchase order counts.
WITH latest AS (
    SELECT DISTINCT ON (purchase_order_id) *
    FROM fact_purchase_order
    ORDER BY purchase_order_id, last_updated_date DESC, last_updated_time DESC, purchase_record_id DESC
)
SELECT cp.counterparty_legal_name,
       c.currency_code,
       count(*)                                  AS purchase_orders,
       sum(p.item_quantity * p.item_unit_price)  AS spend
FROM latest p
JOIN dim_counterparty cp ON cp.counterparty_id = p.counterparty_id
JOIN dim_currency c      ON c.currency_id = p.currency_id
GROUP BY cp.counterparty_legal_name, c.currency_code
ORDER BY spend DESC, cp.counterparty_legal_name, c.currency_code;
