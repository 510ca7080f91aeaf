-- Savers: a healthy balance and no housing or personal loan to service.
SELECT row_id, balance
FROM history
WHERE balance > 1000
  AND housing = 'no'
  AND loan = 'no'
