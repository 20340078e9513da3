package config

import (
	"strings"
	"testing"
)

func TestDeltaMaxStepsDefaultsToZeroAndRejectsBadValues(t *testing.T) {
	s, err := Load(envOf(map[string]string{}), Flags{})
	if err != nil || s.DeltaMaxSteps != 0 {
		t.Fatalf("default: %+v, %v", s, err)
	}
	s, err = Load(envOf(map[string]string{"WALDEN_DELTA_MAX_STEPS": "6"}), Flags{})
	if err != nil || s.DeltaMaxSteps != 6 {
		t.Fatalf("6: %v, %v", s.DeltaMaxSteps, err)
	}
	for _, v := range []string{"-1", "three", "2.5", ""} {
		_, err := Load(envOf(map[string]string{"WALDEN_DELTA_MAX_STEPS": v}), Flags{})
		if err == nil || !strings.HasPrefix(err.Error(), "WALDEN_DELTA_MAX_STEPS:") || strings.Contains(err.Error(), "\n") {
			t.Errorf("WALDEN_DELTA_MAX_STEPS=%q: err = %v", v, err)
		}
	}
}
