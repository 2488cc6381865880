package webhooks

import "github.com/prometheus/client_golang/prometheus"

// metrics are the intake's Prometheus metrics.
type metrics struct {
	rejected      *prometheus.CounterVec
	accepted      *prometheus.CounterVec
	processed     *prometheus.CounterVec
	jobs          *prometheus.CounterVec
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_webhook_rejected_total",
			Help: "Webhook deliveries rejected, by provider and reason (bad_signature, stale_timestamp, missing_header, too_large, ...).",
		}, []string{"provider", "reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_webhook_accepted_total",
			Help: "Webhook deliveries acknowledged, by provider and outcome (stored, duplicate, poison, ignored, validation).",
		}, []string{"provider", "outcome"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_webhook_processed_total",
			Help: "Stored webhook deliveries processed, by provider and result (processed, failed).",
		}, []string{"provider", "result"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_webhook_process_jobs_total",
			Help: "Processing jobs committed, by path: in_process (processed here right after the commit; River is the fallback), queued (River runs it: the in-process queue was full), replay (a replay queued one); and replay_moved: a replay made the job waiting to retry the delivery run now, adding none.",
		}, []string{"path"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_webhook_commit_batch_size",
			Help:    "Deliveries per group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_webhook_commit_seconds",
			Help:    "Duration of one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.rejected, m.accepted, m.processed, m.jobs, m.batchSize, m.commitSeconds)
	}
	return m
}
