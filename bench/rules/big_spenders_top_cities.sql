SELECT customer_id FROM history
WHERE spend_90d > (SELECT AVG(spend_90d) FROM history)
  AND city IN (SELECT city FROM history GROUP BY city ORDER BY COUNT(*) DESC LIMIT 20)
