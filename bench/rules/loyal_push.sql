SELECT customer_id FROM history
WHERE membership IN ('gold', 'platinum') AND channel = 'push'
