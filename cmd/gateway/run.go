package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/secrets/local"
)

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `usage: gateway [command] [flags]

commands:
  serve                 run the HTTP API and job workers (default)
  migrate               apply database migrations and exit
  token                 mint a dev-mode access token (--sub, --group, --scope, --service, --ttl)
  secrets rotate-key    re-encrypt the local secret store under a new key
  sandbox …             play the providers' side of a session in the sandbox
  healthcheck           probe /healthz on GATEWAY_ADDR; exit 0 when healthy
  config                print the configuration (credentials hidden) and check it as serve does

Run "gateway serve --help" for the configuration variables.
`

// run is the whole program; main only supplies the process's environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelp(args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args, getenv, stdout, stderr)
	case "token":
		return cmdToken(args, getenv, stdout, stderr)
	case "secrets":
		return cmdSecrets(ctx, args, getenv, stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(ctx, args, getenv, stdout)
	case "config":
		return cmdConfig(args, getenv, stdout)
	case "sandbox":
		return cmdSandbox(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// isHelp reports whether arg asks for help rather than naming a command.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// parseFlags parses a subcommand's flags; -h prints usage (and, for serve,
// the configuration variables) and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

// parseThenLoad parses a subcommand's flags (see parseFlags), then loads the
// configuration. ok is false when the command is done: -h printed its usage
// (err nil), or the flags or the configuration are wrong.
func parseThenLoad(fs *flag.FlagSet, args []string, out io.Writer, getenv func(string) string) (cfg config.Config, ok bool, err error) {
	if err := parseFlags(fs, args, out); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil
		}
		return cfg, false, err
	}
	cfg, err = loadConfig(getenv)
	return cfg, err == nil, err
}

// printVars writes the configuration table for --help.
func printVars(w io.Writer) {
	fmt.Fprintln(w, "\nConfiguration (environment variables):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range config.Vars() {
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Help)
	}
	tw.Flush()
}

func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, usageError{err.Error()}
	}
	return cfg, nil
}

// cmdToken mints a dev token with the key the server uses (same data dir).
// --service mints a machine client's token: sub is the dev client id (as
// Cognito's client-credentials tokens have it) and the scope is
// GATEWAY_SERVICE_SCOPE, which makes it a service client.
func cmdToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	sub := fs.String("sub", "", "subject (user id) of the token; required unless --service")
	var groups, scopes multiFlag
	fs.Var(&groups, "group", "Cognito group: candidate, mentor or admin (repeatable)")
	fs.Var(&scopes, "scope", "OAuth scope (repeatable); a machine client (--sub "+auth.DevClientID+", no group) is a service client only with GATEWAY_SERVICE_SCOPE")
	service := fs.Bool("service", false, "mint a service client's token: --sub "+auth.DevClientID+" and the scope GATEWAY_SERVICE_SCOPE")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime of the token")
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *service {
		if len(groups) > 0 {
			return usageError{"token: --service takes no --group (a machine client has no user)"}
		}
		if *sub != "" && *sub != auth.DevClientID {
			return usageError{fmt.Sprintf("token: --service mints sub %q (the client id); leave --sub out", auth.DevClientID)}
		}
		*sub = auth.DevClientID
	}
	if *sub == "" {
		return usageError{"token: --sub is required (or --service)"}
	}
	if *ttl <= 0 {
		return usageError{fmt.Sprintf("token: --ttl must be positive (got %s)", *ttl)}
	}
	for _, g := range groups {
		switch auth.Role(g) {
		case auth.RoleCandidate, auth.RoleMentor, auth.RoleAdmin:
		default:
			return usageError{fmt.Sprintf("token: unknown group %q (candidate, mentor, admin)", g)}
		}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if cfg.Auth.Mode != config.AuthDev {
		return usageError{"token: only available with GATEWAY_AUTH_MODE=dev"}
	}
	if *service && !slices.Contains(scopes, cfg.Auth.ServiceScope) {
		scopes = append(scopes, cfg.Auth.ServiceScope)
	}
	// Only the server creates the key: a token signed by a key of its own
	// (run from another folder) would be refused by the server.
	issuer, err := auth.LoadDevIssuer(cfg.DataDir, auth.DevIssuerName)
	if errors.Is(err, iofs.ErrNotExist) {
		return usageError{fmt.Sprintf("token: no dev signing key in %s: run this command from the folder where the gateway runs (or set GATEWAY_DATA_DIR to its data folder); the gateway creates the key when it starts", cfg.DataDir)}
	}
	if err != nil {
		return err
	}
	tok, err := issuer.Mint(auth.TokenRequest{Subject: *sub, Groups: groups, Scopes: scopes, TTL: *ttl})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdHealthcheck probes /healthz on the configured address.
func cmdHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: gateway healthcheck\n\nProbes GET /healthz on GATEWAY_ADDR (loopback when it listens on all interfaces)\nand exits 0 when it answers 200 within 3s: the container's HEALTHCHECK.")
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// Trimmed as serve's configuration trims it: an env file's trailing
	// space would otherwise fail every probe of a healthy gateway.
	addr := strings.TrimSpace(getenv("GATEWAY_ADDR"))
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{"healthcheck: GATEWAY_ADDR is not host:port"}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %d", resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// cmdConfig prints every configuration variable with the value the
// environment gives it and where that comes from (credentials hidden), and
// the values derived from them, then checks the configuration as serve
// does: exit status 2 and every problem when it would not start. It reads
// nothing but the environment (no database, no secret store).
func cmdConfig(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: gateway config\n\nPrints the configuration from the environment (credentials hidden) and checks it\nas serve does; exits 2 listing every problem when serve would refuse to start.")
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tFROM")
	for _, v := range config.Vars() {
		raw, from := strings.TrimSpace(getenv(v.Name)), "environment"
		if raw == "" {
			raw, from = v.Default, "default"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.Shown(raw), from)
	}
	tw.Flush()
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nderived: public URL %s, database wait %s, CalDAV poll interval %s, Zoom early start %s, Sentry environment %s\n",
		cfg.PublicURL, cfg.DatabaseWait, cfg.CalDAV.PollInterval, cfg.Zoom.EarlyStart, cfg.Sentry.Environment)
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	fmt.Fprintln(stdout, "configuration ok")
	return nil
}

const secretsUsage = `usage: gateway secrets rotate-key [--new-key BASE64]

Re-encrypts the local secret store (GATEWAY_SECRETS_BACKEND=local) under a new
key. With the key file (GATEWAY_DATA_DIR/secret.key) it writes a new random key
there, and refuses while a gateway serves from the same data folder. With
GATEWAY_SECRET_KEY: restart every process with NEW,OLD, run it with
--new-key NEW, then set NEW.
`

// cmdSecrets runs secret-store maintenance.
func cmdSecrets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, secretsUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "rotate-key" {
		return usageError{"secrets: usage: gateway secrets rotate-key [--new-key BASE64]"}
	}
	fs := flag.NewFlagSet("secrets rotate-key", flag.ContinueOnError)
	newKeyB64 := fs.String("new-key", "", "base64 32-byte key to rotate to (default: a new random key written to the key file)")
	cfg, ok, err := parseThenLoad(fs, args[1:], stderr, getenv)
	if !ok {
		return err
	}
	if cfg.Secrets.Backend != config.SecretsLocal {
		return usageError{"secrets rotate-key: only the local backend has a data key (SSM uses KMS)"}
	}
	if cfg.Secrets.Key == "" {
		// The key file is the data folder's: a gateway serving from it
		// holds the old key only, could not read what the rotation
		// re-encrypts, and what it seals meanwhile would be lost with the
		// old key file. Stop it first.
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("secrets rotate-key: %w", err)
		}
		defer unlock()
	}
	a, err := openBase(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	var newKey local.Key
	if *newKeyB64 != "" {
		newKey, err = local.KeyFromBase64(*newKeyB64)
	} else {
		newKey, err = local.GenerateKey()
	}
	if err != nil {
		return fmt.Errorf("secrets rotate-key: %w", err)
	}
	n, err := a.rotateKey(ctx, newKey, *newKeyB64 == "")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted %d secrets under key %s\n", n, newKey.ID())
	return nil
}
