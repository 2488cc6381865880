package webhooks

// HoldArrival tells the group committer that one more delivery is on its
// way, so it keeps gathering (up to Linger) until release is called.
func (s *Service) HoldArrival() (release func()) { return s.committer.enter() }

// DecodedKept reports the decoded Zoom events kept for processing.
func (s *Service) DecodedKept() int { return s.decoded.len() }
