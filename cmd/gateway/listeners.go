package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/internal/httpapi"
)

// sideServer is an HTTP listener beside the API's: Go's pprof profiles
// (GATEWAY_DEBUG_ADDR) or the Prometheus metrics (GATEWAY_METRICS_ADDR).
// Either is plain HTTP without auth, apart from the API listener so it is
// never reachable through API Gateway. serve binds it with the API's,
// before anything slow, and stops it after the shutdown's drain.
type sideServer struct {
	srv *http.Server
	// url is http://host:port of the bound address (port 0 resolved).
	url string
}

// sideStopTimeout is how long stop lets answers being written finish (a
// scrape takes milliseconds) before it closes their connections.
const sideStopTimeout = time.Second

// startSide listens on addr, the value of the variable named in errors,
// and serves h there. writeTimeout bounds writing an answer; 0 leaves it
// unbounded, for a profile that takes as long as it is asked to.
func startSide(ctx context.Context, variable, addr string, h http.Handler, writeTimeout time.Duration, logger *slog.Logger) (*sideServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", variable, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	return &sideServer{srv: srv, url: "http://" + ln.Addr().String()}, nil
}

// stop stops accepting, lets the answers being written finish for up to
// sideStopTimeout, then closes what is left.
func (s *sideServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), sideStopTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
}

// startDebug serves Go's pprof profiles on addr (GATEWAY_DEBUG_ADDR).
func startDebug(ctx context.Context, addr string, logger *slog.Logger) (*sideServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: pprof refuses a profile longer than it.
	s, err := startSide(ctx, "GATEWAY_DEBUG_ADDR", addr, mux, 0, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("debug listener (pprof)", "url", s.url+"/debug/pprof/")
	return s, nil
}

// metricsWriteTimeout bounds writing a scrape's answer on the metrics
// listener (Prometheus gives up after 10s by default).
const metricsWriteTimeout = 30 * time.Second

// startMetrics serves GET /metrics, the metrics of reg, on addr
// (GATEWAY_METRICS_ADDR); the API listener then does not.
func startMetrics(ctx context.Context, addr string, reg *prometheus.Registry, logger *slog.Logger) (*sideServer, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", httpapi.MetricsHandler(reg))
	s, err := startSide(ctx, "GATEWAY_METRICS_ADDR", addr, mux, metricsWriteTimeout, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("metrics listener", "url", s.url+"/metrics")
	return s, nil
}
