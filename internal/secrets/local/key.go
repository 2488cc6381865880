package local

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Key is one AES-256 data key with a stable id derived from its bytes (so
// the id stored with each row names the key without revealing it). Key
// never prints its bytes: fmt and slog show only the id.
type Key struct {
	id string
	k  [KeySize]byte
}

// NewKey wraps 32 raw key bytes.
func NewKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("local: key must be %d bytes, got %d", KeySize, len(b))
	}
	var k Key
	copy(k.k[:], b)
	if k.k == ([KeySize]byte{}) {
		return Key{}, errors.New("local: key is all zeros")
	}
	sum := sha256.Sum256(append([]byte("spotlight/secrets/key-id\x00"), b...))
	k.id = hex.EncodeToString(sum[:8])
	return k, nil
}

// GenerateKey returns a new random key.
func GenerateKey() (Key, error) {
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, fmt.Errorf("local: generate key: %w", err)
	}
	return NewKey(b[:])
}

// KeyFromBase64 decodes a key given as base64 (standard or URL alphabet,
// padded or not), as in GATEWAY_SECRET_KEY. It must decode to 32 bytes.
func KeyFromBase64(s string) (Key, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return NewKey(b)
		}
	}
	// Never echo the input: it is the key.
	return Key{}, errors.New("local: key is not valid base64")
}

// Base64 returns the key in standard base64, for writing a key file or
// printing a newly generated GATEWAY_SECRET_KEY once to an operator.
func (k Key) Base64() string { return base64.StdEncoding.EncodeToString(k.k[:]) }

// ID returns the key's id (16 hex characters).
func (k Key) ID() string { return k.id }

// String shows the id only.
func (k Key) String() string { return "local.Key{ID:" + k.id + "}" }

// GoString shows the id only.
func (k Key) GoString() string { return k.String() }

// Format shows the id only, whatever the verb.
func (k Key) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, k.String()) }

// LogValue shows the id only.
func (k Key) LogValue() slog.Value { return slog.GroupValue(slog.String("key_id", k.id)) }

// LoadOrCreateKeyFile reads the base64 key in path, or, when the file does
// not exist, generates a key and writes it there with mode 0600 (atomically:
// concurrent first runs agree on one key). An existing file readable or
// writable by group or others is refused.
func LoadOrCreateKeyFile(path string) (Key, error) {
	k, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = GenerateKey()
	if err != nil {
		return Key{}, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("local: key file directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secret-key-*")
	if err != nil {
		return Key{}, fmt.Errorf("local: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("local: create key file: %w", err)
	}
	if _, err := tmp.WriteString(k.Base64() + "\n"); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("local: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("local: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Key{}, fmt.Errorf("local: write key file: %w", err)
	}
	// Link fails if another process created the file first; then use theirs.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		return Key{}, fmt.Errorf("local: install key file: %w", err)
	}
	return k, nil
}

func readKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("local: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("local: stat key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("local: key file %s has mode %#o; it must not be accessible to group or others (chmod 600)", path, st.Mode().Perm())
	}
	b := make([]byte, 256)
	n, err := f.Read(b)
	if err != nil {
		return Key{}, fmt.Errorf("local: read key file: %w", err)
	}
	k, err := KeyFromBase64(string(bytes.TrimSpace(b[:n])))
	if err != nil {
		return Key{}, fmt.Errorf("local: key file %s: %w", path, err)
	}
	return k, nil
}

// Keyring holds the current key (used for every write) and older keys by
// id (still accepted for reads until RotateKey has re-encrypted their
// rows). It is safe for concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	current Key
	keys    map[string]Key
}

// NewKeyring returns a keyring that writes with current and can also read
// rows written with any of old.
func NewKeyring(current Key, old ...Key) *Keyring {
	kr := &Keyring{current: current, keys: map[string]Key{current.id: current}}
	for _, k := range old {
		if k.id != "" {
			kr.keys[k.id] = k
		}
	}
	return kr
}

// Current returns the key used for writes.
func (kr *Keyring) Current() Key {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.current
}

// Lookup returns the key with the given id.
func (kr *Keyring) Lookup(id string) (Key, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k, ok := kr.keys[id]
	return k, ok
}

// IDs returns the ids of all keys, current first.
func (kr *Keyring) IDs() []string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	ids := []string{kr.current.id}
	for id := range kr.keys {
		if id != kr.current.id {
			ids = append(ids, id)
		}
	}
	return ids
}

// setCurrent makes k the write key, keeping the previous one for reads.
func (kr *Keyring) setCurrent(k Key) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.keys[k.id] = k
	kr.current = k
}
