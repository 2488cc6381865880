// Package systemtest drives whole gateway processes: the real `gateway`
// binary, built once per test run, started as a subprocess with
// GATEWAY_PROVIDERS=live and pointed at provider simulators (zoomtest,
// jiratest, caldavtest, gcaltest) that run in the calling process on
// loopback, so they outlive the gateway when it is killed.
//
// The harness (Build, Upstreams, Gateway, Provision, Audit) is used by this
// package's tests — the crash test (SIGKILL at random moments during
// bookings, restart, drain, then every booking confirmed or failed and
// compensated with no orphan and no duplicate provider object) and the
// scale-out test (two gateways on one PostgreSQL schema), the README
// walkthrough, run with bash against a gateway in its embedded default
// (sandbox providers in-process), and a booking that outlives a restart of
// that gateway — and by the
// booking benchmark in bench/booking. It talks to the gateway only through
// its public HTTP API with the generated Go client (package client), and to
// the gateway's configuration only through environment variables and the
// `gateway token` command, like an operator would.
package systemtest
