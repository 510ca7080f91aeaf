-- Cheap restaurants less than 15 minutes away.
SELECT * FROM history
WHERE coupon = 'Restaurant(<20)' AND toCoupon_GEQ15min = 0
