package fastpath

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/walden-pg/walden/config"
)

// TestLogShapeCrossesTheSocketIntactAndLeavesTheFingerprint: the agent
// logs a served request where the client would have, including WAL-E's
// empty WALE_LOG_DESTINATION (nowhere) as distinct from unset (defaults);
// and a different log shape alone no longer refuses the request.
func TestLogShapeCrossesTheSocketIntactAndLeavesTheFingerprint(t *testing.T) {
	for _, d := range [][]string{nil, {}, {"stderr"}, {"stderr", "syslog"}} {
		client := &config.Settings{LogDestinations: d, SyslogFacility: "local3", LogFormat: "json"}
		b, err := json.Marshal(&Request{Log: LogShapeOf(client)})
		if err != nil {
			t.Fatal(err)
		}
		var req Request
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		agent := &config.Settings{LogDestinations: []string{"stderr"}}
		req.Log.Apply(agent)
		if !reflect.DeepEqual(agent.LogDestinations, d) || (agent.LogDestinations == nil) != (d == nil) ||
			agent.SyslogFacility != "local3" || agent.LogFormat != "json" {
			t.Errorf("destinations %#v arrived as %#v (%q, %q)", d, agent.LogDestinations, agent.SyslogFacility, agent.LogFormat)
		}
	}
	a := &config.Settings{LogDestinations: []string{"stderr"}}
	b := &config.Settings{LogDestinations: []string{"stderr", "syslog"}, SyslogFacility: "local0"}
	if Fingerprint(a) != Fingerprint(b) {
		t.Error("settings differing only in logging fingerprint differently")
	}
}
