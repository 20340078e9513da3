package wire

import (
	"reflect"
	"testing"

	"github.com/walden-pg/walden/config"
)

// TestLogShapeCrossesTheSocketIntact: the agent logs a served request
// where the client would have, including WAL-E's empty
// WALE_LOG_DESTINATION (nowhere) as distinct from unset (defaults).
func TestLogShapeCrossesTheSocketIntact(t *testing.T) {
	for _, d := range [][]string{nil, {}, {"stderr"}, {"stderr", "syslog"}} {
		client := &config.Settings{LogDestinations: d, SyslogFacility: "local3", LogFormat: "json"}
		req, err := ParseRequest(AppendRequest(nil, &Request{Version: Version, Log: LogShapeOf(client)}))
		if err != nil {
			t.Fatal(err)
		}
		agent := &config.Settings{LogDestinations: []string{"stderr"}}
		req.Log.Apply(agent)
		if !reflect.DeepEqual(agent.LogDestinations, d) || (agent.LogDestinations == nil) != (d == nil) ||
			agent.SyslogFacility != "local3" || agent.LogFormat != "json" {
			t.Errorf("destinations %#v arrived as %#v (%q, %q)", d, agent.LogDestinations, agent.SyslogFacility, agent.LogFormat)
		}
	}
}
