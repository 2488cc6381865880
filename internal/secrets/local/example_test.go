package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/store"
)

// Example builds the embedded backend on a migrated SQLite store, with the
// key from a key file created on first run (GATEWAY_SECRET_KEY would go
// through local.KeyFromBase64 instead).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "secrets-example")
	defer os.RemoveAll(dir)

	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + filepath.Join(dir, "gateway.db")}, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		panic(err)
	}
	key, err := local.LoadOrCreateKeyFile(filepath.Join(dir, "secret.key"))
	if err != nil {
		panic(err)
	}
	s, err := local.New(db.DB(), string(db.Dialect()), local.NewKeyring(key))
	if err != nil {
		panic(err)
	}
	v, _ := s.Put(ctx, "/spotlight/dev/providers/zoom", []byte("client-secret"), 0)
	newKey, _ := local.GenerateKey()
	n, _ := s.RotateKey(ctx, newKey)
	sec, _ := s.Get(ctx, "/spotlight/dev/providers/zoom")
	fmt.Println(v, n, string(sec.Value))
	// Output: 1 1 client-secret
}
