package wire

import "github.com/walden-pg/walden/config"

// LogShape is where and how the client would log: the agent serves the
// request with it, so that syslog and stderr hear what the client's own
// run would have written, whatever the agent's own logging is.
type LogShape struct {
	Destinations []string // nil: the defaults; empty: nowhere
	Facility     string
	Format       string
}

// LogShapeOf is the logging settings of s.
func LogShapeOf(s *config.Settings) *LogShape {
	return &LogShape{Destinations: s.LogDestinations, Facility: s.SyslogFacility, Format: s.LogFormat}
}

// Apply sets the logging of s to the shape's. An empty list (log nowhere,
// WAL-E's empty WALE_LOG_DESTINATION) stays distinct from none (defaults).
func (l *LogShape) Apply(s *config.Settings) {
	s.LogDestinations = nil
	if l.Destinations != nil {
		s.LogDestinations = append([]string{}, l.Destinations...)
	}
	s.SyslogFacility, s.LogFormat = l.Facility, l.Format
}
