-- busy_calendars lists the calendars of a Google or CalDAV connection whose
-- busy time counts for availability and the check before a booking, as the
-- user chose them: a JSON array of {"id", "name"} (Google calendar id or
-- CalDAV path, display name) with "url" (the collection's absolute URL) for
-- CalDAV. The chosen calendar (calendar_id) counts whether listed or not.
-- '' (never chosen, as for connections made before this column) counts the
-- chosen calendar only.
ALTER TABLE connections ADD COLUMN busy_calendars TEXT NOT NULL DEFAULT '';
