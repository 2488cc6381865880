package systemtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// binary is the gateway built once for the whole test run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "systemtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	binary, err = Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployment is simulators plus gateway processes sharing one database.
type deployment struct {
	up      *Upstreams
	dataDir string
	dbURL   string
	env     []string
}

func newDeployment(t *testing.T, dbURL string, calUsers []string, env ...string) *deployment {
	t.Helper()
	up := StartUpstreams(UpstreamOptions{CalDAVUsers: calUsers})
	t.Cleanup(up.Close)
	return &deployment{up: up, dataDir: t.TempDir(), dbURL: dbURL, env: append(up.Env(), env...)}
}

// gateway starts a gateway process of the deployment; name tells its log apart.
func (d *deployment) gateway(t *testing.T, name string) *Gateway {
	t.Helper()
	gw, err := NewGateway(Options{Binary: binary, DataDir: d.dataDir, DatabaseURL: d.dbURL, Env: d.env,
		LogPath: filepath.Join(d.dataDir, name+".log")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log tail:\n%s", name, gw.LogTail(60))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Stop(ctx); err != nil {
			t.Logf("stop %s: %v", name, err)
		}
	})
	return gw
}
