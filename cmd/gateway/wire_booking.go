package main

// wireBooking wires the booking area: its workers, handlers and routes.
func wireBooking(w *wiring) error {
	return nil
}
