-- New prospects, few calls so far this campaign, reached by mobile.
SELECT row_id
FROM history
WHERE pdays = -1
  AND campaign <= 2
  AND contact = 'cellular'
