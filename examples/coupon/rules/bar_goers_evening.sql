-- Bar coupons for regular bar-goers, in the evening.
SELECT * FROM history
WHERE coupon = 'Bar' AND Bar IN ('1~3', '4~8', 'gt8') AND time IN ('6PM', '10PM')
