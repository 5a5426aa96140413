package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion's logs to the SFU's logger: pion's trace, debug and
// info at slog's Debug (pion is chatty at info), its warnings and errors
// at Warn and Error. Each record carries pion's scope ("ice", "dtls" …).
type pionLogs struct {
	log *slog.Logger
}

// NewLogger implements logging.LoggerFactory.
func (f *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct {
	log *slog.Logger
}

func (l pionLogger) print(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) printf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(msg string)                  { l.print(slog.LevelDebug-4, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.printf(slog.LevelDebug-4, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.print(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.printf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.print(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.printf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.print(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.printf(slog.LevelWarn, format, args...) }
func (l pionLogger) Error(msg string)                  { l.print(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.printf(slog.LevelError, format, args...) }
