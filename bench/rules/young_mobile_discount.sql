SELECT customer_id FROM history
WHERE age BETWEEN 25 AND 40 AND device IN ('ios', 'android') AND discount_rate >= 0.2
