-- Payments star, in Athena (the views of the Glue database): payments paid vs unpaid per
-- payment type and currency. The same question as
-- ../payments_paid_vs_unpaid_per_payment_type.sql, in Trino's dialect: a payment whose
-- `paid` turned true has two fact rows; its latest version counts.
WITH latest AS (
    SELECT *
    FROM (
        SELECT p.*,
               row_number() OVER (
                   PARTITION BY payment_id
                   ORDER BY last_updated_date DESC, last_updated_time DESC
               ) AS newest_first
        FROM fact_payment p
    )
    WHERE newest_first = 1
)
SELECT t.payment_type_name,
       c.currency_code,
       count(*) FILTER (WHERE p.paid)                              AS paid,
       coalesce(sum(p.payment_amount) FILTER (WHERE p.paid), 0)     AS paid_amount,
       count(*) FILTER (WHERE NOT p.paid)                          AS unpaid,
       coalesce(sum(p.payment_amount) FILTER (WHERE NOT p.paid), 0) AS unpaid_amount
FROM latest p
JOIN dim_payment_type t ON t.payment_type_id = p.payment_type_id
JOIN dim_currency c     ON c.currency_id = p.currency_id
GROUP BY t.payment_type_name, c.currency_code
ORDER BY t.payment_type_name, c.currency_code
