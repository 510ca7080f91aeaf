-- Call back everyone whose previous campaign ended in a subscription.
SELECT row_id
FROM history
WHERE poutcome = 'success'
