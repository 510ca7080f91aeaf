SELECT * FROM history
WHERE days_since_last_order < 30 AND visits_30d >= 3
