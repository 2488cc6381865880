package outbound

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the Prometheus collectors of the outbound transport. One
// Metrics can be shared by all providers' clients.
type Metrics struct {
	requests *prometheus.CounterVec
	retries  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// Outcome labels of gateway_outbound_requests_total.
const (
	OutcomeSuccess     = "success"      // 1xx-3xx
	OutcomeClientError = "client_error" // 4xx other than 429
	OutcomeRateLimited = "rate_limited" // 429
	OutcomeServerError = "server_error" // 5xx
	OutcomeTransport   = "transport_error"
	OutcomeCircuitOpen = "circuit_open"
	OutcomeCanceled    = "canceled" // the caller's context ended
)

// NewMetrics creates and registers on reg:
//
//   - gateway_outbound_requests_total{provider,operation,outcome}: calls (after
//     retries) by final outcome;
//   - gateway_outbound_retries_total{provider,operation}: attempts beyond the first;
//   - gateway_outbound_request_duration_seconds{provider,operation}: call latency,
//     retries and waits included.
//
// It panics if the collectors are already registered on reg, like
// prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_outbound_requests_total",
			Help: "Outbound provider calls by final outcome (after retries).",
		}, []string{"provider", "operation", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_outbound_retries_total",
			Help: "Outbound attempts beyond the first one of a call.",
		}, []string{"provider", "operation"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_outbound_request_duration_seconds",
			Help:    "Latency of outbound provider calls, retries and waits included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"provider", "operation"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.retries, m.latency)
	}
	return m
}

func (m *Metrics) observe(provider, op, outcome string, attempts int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(provider, op, outcome).Inc()
	if attempts > 1 {
		m.retries.WithLabelValues(provider, op).Add(float64(attempts - 1))
	}
	m.latency.WithLabelValues(provider, op).Observe(d.Seconds())
}
