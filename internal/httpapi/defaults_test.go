package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/jsonb"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestDefaultsAreTheContracts: the handlers apply the defaults openapi.yaml
// declares (the validator does not fill them in), so a client reading the
// contract gets what it says.
func TestDefaultsAreTheContracts(t *testing.T) {
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	list := spec.Paths.Find("/system/logs").Get
	write := spec.Components.Schemas["SystemLogCreate"].Value
	for name, c := range map[string]struct {
		declared any
		applied  any
	}{
		"limit":            {list.Parameters.GetByInAndName("query", "limit").Schema.Value.Default, defaultLimit},
		"total_limit":      {list.Parameters.GetByInAndName("query", "total_limit").Schema.Value.Default, defaultTotalLimit},
		"entry's level":    {write.Properties["level"].Value.Default, defaultLevel},
		"entry's category": {write.Properties["category"].Value.Default, defaultCategory},
	} {
		if fmt.Sprint(c.declared) != fmt.Sprint(c.applied) {
			t.Errorf("%s: the contract's default is %v, the handlers apply %v", name, c.declared, c.applied)
		}
	}
}

// TestLimitsAreTheContracts: the server-enforced limits that openapi.yaml
// states in prose are the ones the code enforces.
func TestLimitsAreTheContracts(t *testing.T) {
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	context := spec.Components.Schemas["SystemLogCreate"].Value.Properties["context"].Value.Description
	limit := spec.Paths.Find("/system/logs").Get.Parameters.GetByInAndName("query", "limit").Description
	for _, c := range []struct{ text, want string }{
		{context, fmt.Sprintf("At most %d bytes", MaxContextBytes)},
		{context, fmt.Sprintf("%d levels", jsonb.MaxDepth)},
		{limit, fmt.Sprintf("about %d MiB", logstore.MaxPageBytes>>20)},
	} {
		if !strings.Contains(strings.Join(strings.Fields(c.text), " "), c.want) {
			t.Errorf("the contract says %q, which does not state %q", c.text, c.want)
		}
	}
}
