-- People with time to talk: students, the retired and anyone over 60, reached by mobile.
SELECT *
FROM history
WHERE (job IN ('student', 'retired') OR age >= 60)
  AND contact = 'cellular'
