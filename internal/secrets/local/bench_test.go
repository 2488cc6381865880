package local_test

import (
	"testing"

	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// BenchmarkGet measures a decrypting read on SQLite.
func BenchmarkGet(b *testing.B) {
	st := storetest.SQLite(b)
	k, _ := local.GenerateKey()
	s, err := local.New(st.DB(), string(st.Dialect()), local.NewKeyring(k))
	if err != nil {
		b.Fatal(err)
	}
	p := "/spotlight/bench/users/u1/google"
	if _, err := s.Put(b.Context(), p, make([]byte, 1024), 0); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Get(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut measures a conditional encrypting write on SQLite.
func BenchmarkPut(b *testing.B) {
	st := storetest.SQLite(b)
	k, _ := local.GenerateKey()
	s, err := local.New(st.DB(), string(st.Dialect()), local.NewKeyring(k))
	if err != nil {
		b.Fatal(err)
	}
	p := "/spotlight/bench/users/u1/google"
	var v int64
	for b.Loop() {
		if v, err = s.Put(b.Context(), p, make([]byte, 1024), v); err != nil {
			b.Fatal(err)
		}
	}
}
