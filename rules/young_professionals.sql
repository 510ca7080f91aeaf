-- The brief's classic: working-age professionals with no credit default.
SELECT *
FROM history
WHERE age BETWEEN 25 AND 40
  AND job IN ('management', 'technician', 'admin.')
  AND "default" = 'no'
