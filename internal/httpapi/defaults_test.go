package httpapi

import (
	"fmt"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
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
