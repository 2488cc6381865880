package webhooks

// HoldArrival tells the group committer that one more delivery is on its
// way, so it keeps gathering (up to Linger) until release is called.
func (s *Service) HoldArrival() (release func()) { return s.committer.enter().done }

// HoldProcessing takes a processing turn (Config.ProcessConcurrency) until
// release is called, so neither the in-process hand-off nor River's jobs
// can process meanwhile.
func (s *Service) HoldProcessing() (release func()) {
	s.processing <- struct{}{}
	return func() { <-s.processing }
}
