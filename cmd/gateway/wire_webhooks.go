package main

// wireWebhooks wires the webhooks area: its workers, handlers and routes.
func wireWebhooks(w *wiring) error {
	return nil
}
