-- Coffee-house coupons for people who already go to coffee houses at least monthly.
SELECT * FROM history
WHERE coupon = 'Coffee House' AND CoffeeHouse IN ('1~3', '4~8', 'gt8')
