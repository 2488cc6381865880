package main

// wireConnect wires the connect area: its workers, handlers and routes.
func wireConnect(w *wiring) error {
	return nil
}
