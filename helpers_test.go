package mitoken

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitoken/mitoken/internal/clock"
	"github.com/mitoken/mitoken/internal/wire"
)

// epoch is the fake clock's start in cache tests.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeSource is an in-memory token source for cache tests: it counts calls,
// can block on a gate, and answers with what the test scripts.
type fakeSource struct {
	clk     *clock.Fake
	life    time.Duration
	calls   atomic.Int32
	gate    chan struct{} // when non-nil, fetch waits for it to close
	started chan struct{} // when non-nil, receives once per fetch start
	mu      sync.Mutex
	errs    []error // returned (and consumed) before tokens
	lastCtx context.Context
	panics  bool
}

func (f *fakeSource) fetch(ctx context.Context, resource string) (wire.Token, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.lastCtx = ctx
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return wire.Token{}, ctx.Err()
		}
	}
	if f.panics {
		panic("boom: secret-in-panic")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return wire.Token{}, err
	}
	life := f.life
	if life == 0 {
		life = time.Hour
	}
	return wire.Token{
		AccessToken: "tok-" + string(rune('A'+n-1)),
		TokenType:   "Bearer",
		ExpiresOn:   f.clk.Now().Add(life),
		Resource:    resource,
	}, nil
}

// newTestBase returns a credential core over a fresh cache with a fake clock
// and no jitter.
func newTestBase(t *testing.T, src *fakeSource) (*base, *Cache) {
	t.Helper()
	if src.clk == nil {
		src.clk = clock.NewFake(epoch)
	}
	c := newCache(src.clk)
	c.jitter = func(time.Duration) time.Duration { return 0 }
	b := &base{
		source:       "test",
		scope:        c.scope(scopeKey{source: "test", endpoint: "mem"}),
		fetch:        src.fetch,
		fetchTimeout: time.Minute,
		logger:       slog.New(slog.DiscardHandler),
	}
	t.Cleanup(c.running.Wait)
	return b, c
}

// logBuffer captures every log record, at every level, as text.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
