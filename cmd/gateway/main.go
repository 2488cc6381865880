// Command gateway is the Spotlight integration gateway.
//
//	gateway [serve]          run the HTTP API and the job workers (default)
//	gateway migrate          apply database migrations and exit
//	gateway token --sub S --group G   mint a dev-mode access token
//	gateway token --service           mint a dev-mode service client's token
//	gateway secrets rotate-key        re-encrypt the local secret store under a new key
//	gateway healthcheck      probe /healthz (the container HEALTHCHECK)
//	gateway config           print the configuration (credentials hidden) and check it
//
// Configuration comes from GATEWAY_* environment variables; `gateway serve
// --help` lists them with their defaults.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		stop()
		os.Exit(exitCode(err))
	}
}
