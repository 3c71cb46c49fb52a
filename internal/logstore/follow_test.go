package logstore_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// TestMatchesAgreesWithTheQueries: the in-memory filter the live tail
// applies keeps exactly the entries the listing's SQL keeps, for every
// filter.
func TestMatchesAgreesWithTheQueries(t *testing.T) {
	t.Parallel()
	store, _ := setup(t)
	user, trace := "u-1", "0af7651916cd43dd8448eb211c80319c"
	var entries []logstore.Entry
	for i, level := range []string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "INFO", "ERROR"} {
		e := logstore.Entry{Level: level, Category: fmt.Sprint("c", i%2), Message: "m", CorrelationID: fmt.Sprint("r", i%3), Actor: "a"}
		if i%2 == 0 {
			e.UserID = &user
		}
		if i%3 == 0 {
			e.TraceID = &trace
		}
		entries = append(entries, e)
	}
	stored, _, err := store.InsertBatch(t.Context(), nil, entries)
	if err != nil {
		t.Fatal(err)
	}
	c1, r2, other := "c1", "r2", "nobody"
	mid := stored[3].Timestamp
	later := mid.Add(time.Microsecond)
	for name, f := range map[string]logstore.Filter{
		"none":                   {},
		"levels":                 {Levels: []string{"INFO", "ERROR"}},
		"min level":              {MinLevel: "WARNING"},
		"levels and min level":   {Levels: []string{"INFO", "ERROR"}, MinLevel: "WARNING"},
		"category":               {Category: &c1},
		"correlation id":         {CorrelationID: &r2},
		"user":                   {UserID: &user},
		"unknown user":           {UserID: &other},
		"trace":                  {TraceID: &trace},
		"since (inclusive)":      {Since: &mid},
		"until (exclusive)":      {Until: &mid},
		"since and until":        {Since: &mid, Until: &later},
		"category and min level": {Category: &c1, MinLevel: "ERROR"},
	} {
		page, err := store.List(t.Context(), f, 500, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for _, e := range page.Items {
			want = append(want, e.ID.String())
		}
		for _, e := range stored {
			if f.Matches(e) {
				got = append(got, e.ID.String())
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Matches keeps %v, the listing %v", name, got, want)
		}
	}
}
