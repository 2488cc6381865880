package systemtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// dbProxy is a TCP proxy between a gateway and its PostgreSQL server that a
// test can break the way a database breaks in production: down (every
// connection is cut and new ones are closed at once, as when the server
// restarts or fails over) or hung (connections stay open and nothing
// answers, as in a network partition or a frozen server).
type dbProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
	held  []net.Conn // accepted while hung, never served
	wg    sync.WaitGroup
}

type proxyMode int

const (
	proxyUp proxyMode = iota
	proxyDown
	proxyHung
)

// newDBProxy proxies the PostgreSQL server of dbURL and returns the URL
// that goes through the proxy (same database, options and credentials).
func newDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, upstream: host, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *dbProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		switch mode {
		case proxyDown:
			c.Close()
		case proxyHung:
			p.held = append(p.held, c)
		}
		p.mu.Unlock()
		if mode != proxyUp {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve copies bytes both ways while the proxy is up; hung, it stops
// copying (the bytes wait in the socket buffers, unanswered).
func (p *dbProxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, c) }()
	go func() { defer wg.Done(); p.pipe(c, up) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
	c.Close()
	up.Close()
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for p.hung() {
				// Hold the bytes until the proxy is up again or the
				// connection is cut.
				p.mu.Lock()
				cut := !p.conns[src]
				p.mu.Unlock()
				if cut {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			// EOF or a cut connection: close the other side too.
			dst.Close()
			return
		}
	}
}

func (p *dbProxy) hung() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode == proxyHung
}

// Down cuts every connection and closes new ones at once.
func (p *dbProxy) Down() { p.set(proxyDown, true) }

// Hang stops answering: open connections and new ones get no byte back.
func (p *dbProxy) Hang() { p.set(proxyHung, false) }

// Up serves connections again.
func (p *dbProxy) Up() { p.set(proxyUp, false) }

func (p *dbProxy) set(m proxyMode, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if cut {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
	if m != proxyHung {
		for _, c := range p.held {
			c.Close()
		}
		p.held = nil
	}
}

func (p *dbProxy) close() {
	p.ln.Close()
	p.set(proxyDown, true)
	p.wg.Wait()
}
