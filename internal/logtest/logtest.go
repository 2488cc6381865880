// Package logtest holds what tests need to read what the code under test
// logged or printed while it runs in other goroutines.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer that is safe for concurrent writes and for reading
// while it is written to. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
