-- calendar_place is, for a calendar step, the calendar its event was written
-- to ("google:<calendar id>", "caldav:<collection URL>"; NULL when unknown,
-- as for steps written before this column). After the user chooses another
-- calendar, the event is still moved or removed where it is, not only in
-- the calendar the user has chosen since.
ALTER TABLE booking_steps ADD COLUMN calendar_place TEXT;
