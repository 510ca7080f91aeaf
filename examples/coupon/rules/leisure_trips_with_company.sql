-- Drivers with no urgent destination and someone in the car.
SELECT * FROM history
WHERE destination = 'No Urgent Place' AND passanger <> 'Alone'
