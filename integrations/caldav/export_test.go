package caldav

// VTimezoneForTest exposes the VTIMEZONE builder so the external tests can
// write foreign events the way another client would.
var VTimezoneForTest = vtimezone
