package mitoken

import "log/slog"

// Names for the external test package mitoken_test (the round trips
// against mitokentest, which imports mitoken and so cannot be used from
// package mitoken's own tests).

// TestLog collects every log record a credential writes.
type TestLog = srcLog

// Option returns the WithLogger option that writes into l at debug level.
func (l *srcLog) Option() Option {
	return WithLogger(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})))
}
