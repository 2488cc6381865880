package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// URLsFile is the file in Options.StateDir that records where each
// simulator listens (see WriteURLs); `gateway sandbox` reads it, and the
// next Start listens on the same ports when they are free.
const URLsFile = "urls.json"

// saveInterval is how often a persistent Env saves its simulators' state
// (besides at Close), so that a killed gateway loses at most this much.
const saveInterval = 5 * time.Second

// stateful is a simulator whose state can be saved and restored.
type stateful interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// persister keeps the simulators' state in a folder.
type persister struct {
	dir     string
	sims    map[string]stateful
	mu      sync.Mutex // one save at a time
	stop    chan struct{}
	done    chan struct{}
	started bool
	once    sync.Once
}

// start saves every saveInterval from now on, until close.
func (p *persister) start(e *Env) {
	p.started = true
	go p.loop(e)
}

// close stops the periodic saves and saves a last time.
func (p *persister) close() error {
	p.once.Do(func() {
		close(p.stop)
		if p.started {
			<-p.done
		}
	})
	return p.save()
}

// stateFile is where a simulator's state is kept.
func (p *persister) stateFile(name string) string { return filepath.Join(p.dir, name+".json") }

// restore loads each simulator's saved state. A state that cannot be read
// or restored (say, written by an incompatible version) is set aside as
// <name>.json.bad and that simulator starts empty: the sandbox should
// start, and the log says what was lost.
func (p *persister) restore(e *Env) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("sandbox: state folder: %w", err)
	}
	for name, sim := range p.sims {
		b, err := os.ReadFile(p.stateFile(name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = sim.UnmarshalState(b)
		}
		if err != nil {
			e.logger.Warn("sandbox state not restored; the simulator starts empty", "provider", name, "error", err.Error(),
				"set_aside", p.stateFile(name)+".bad")
			_ = os.Rename(p.stateFile(name), p.stateFile(name)+".bad")
		}
	}
	return nil
}

// save writes every simulator's state (each file replaced atomically).
func (p *persister) save() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for name, sim := range p.sims {
		b, err := sim.MarshalState()
		if err == nil {
			err = writeFileAtomic(p.stateFile(name), b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sandbox: save %s state: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// loop saves every saveInterval until stopped.
func (p *persister) loop(e *Env) {
	defer close(p.done)
	t := time.NewTicker(saveInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if err := p.save(); err != nil {
				e.logger.Error("sandbox state not saved", "error", err.Error())
			}
		}
	}
}

// writeFileAtomic replaces path with b (0600) through a temporary file, so
// a crash leaves the old or the new content, never half of it.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// previousAddrs returns the loopback addresses the simulators listened on
// last time, by provider (none when the file is missing or unreadable).
func previousAddrs(dir string) map[string]string {
	urls, err := ReadURLs(filepath.Join(dir, URLsFile))
	if err != nil {
		return nil
	}
	addrs := make(map[string]string, len(urls))
	for name, u := range urls {
		if pu, err := url.Parse(u); err == nil {
			if host, _, err := net.SplitHostPort(pu.Host); err == nil && net.ParseIP(host).IsLoopback() {
				addrs[name] = pu.Host
			}
		}
	}
	return addrs
}

// listen listens on the previous address of a simulator when it is free,
// otherwise on a new loopback port.
func listen(ctx context.Context, previous string) (net.Listener, error) {
	var lc net.ListenConfig
	if previous != "" {
		if ln, err := lc.Listen(ctx, "tcp", previous); err == nil {
			return ln, nil
		}
	}
	return lc.Listen(ctx, "tcp", "127.0.0.1:0")
}
