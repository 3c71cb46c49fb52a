package logstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// contractLevels returns the LogLevel enum of openapi.yaml, in its order
// (lowest severity first).
func contractLevels(t *testing.T) []string {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	var levels []string
	for _, v := range spec.Components.Schemas["LogLevel"].Value.Enum {
		levels = append(levels, fmt.Sprint(v))
	}
	if len(levels) == 0 {
		t.Fatal("the contract's LogLevel has no enum")
	}
	return levels
}

// systemLogsSQL returns queries/system_logs.sql.
func systemLogsSQL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "queries", "system_logs.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// quoted matches a level literal in SQL: 'DEBUG', with or without ::text.
var quoted = regexp.MustCompile(`'([A-Z]+)'`)

// TestLevelsAreTheContracts: the contract's LogLevel enum is the source;
// every other statement of the levels agrees with it. The store's Levels
// has them in the contract's order (min_level depends on it); the CHECK of
// a migrated database, read back from PostgreSQL, admits exactly them; and
// ListLogsByLevels has one branch for each.
func TestLevelsAreTheContracts(t *testing.T) {
	t.Parallel()
	want := contractLevels(t)
	if !slices.Equal(logstore.Levels, want) {
		t.Errorf("logstore.Levels = %v, the contract says %v", logstore.Levels, want)
	}

	ctx := t.Context()
	_, pool := setup(t)
	var checks []string
	rows, err := pool.Query(ctx, `
		SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
		WHERE c.conrelid = 'system_logs'::regclass AND c.contype = 'c' AND a.attname = 'level'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			t.Fatal(err)
		}
		checks = append(checks, def)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 {
		t.Fatalf("want one CHECK on system_logs.level, got %q", checks)
	}
	var admitted []string
	for _, m := range quoted.FindAllStringSubmatch(checks[0], -1) {
		admitted = append(admitted, m[1])
	}
	if !sameSet(admitted, want) {
		t.Errorf("the database's %s admits %v, the contract says %v", checks[0], admitted, want)
	}

	byLevels := query(t, systemLogsSQL(t), "ListLogsByLevels")
	var branches []string
	for _, m := range regexp.MustCompile(`level = '([A-Z]+)' AND '([A-Z]+)' = ANY`).FindAllStringSubmatch(byLevels, -1) {
		if m[1] != m[2] {
			t.Errorf("a ListLogsByLevels branch reads level %s when %s is asked for", m[1], m[2])
		}
		branches = append(branches, m[1])
	}
	if !sameSet(branches, want) {
		t.Errorf("ListLogsByLevels has branches for %v, the contract says %v", branches, want)
	}
	if other := slices.DeleteFunc(quoted.FindAllString(byLevels, -1), func(s string) bool {
		return slices.Contains(want, strings.Trim(s, "'"))
	}); len(other) > 0 {
		t.Errorf("ListLogsByLevels names levels the contract does not: %v", other)
	}
}

// sameSet reports whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b) && len(slices.Compact(a)) == len(b)
}

// query returns the text of the query named name in sql, from its
// "-- name:" line to the next one.
func query(t *testing.T, sql, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(sql, "-- name: "+name+" ")
	if !ok {
		t.Fatalf("no query %s", name)
	}
	text, _, _ := strings.Cut(rest, "-- name: ")
	return text
}

// TestQueriesShareTheFilters: every query that reads entries by filter
// opens with the same "matching" CTE, so a filter cannot mean one thing in
// a page and another in its total.
func TestQueriesShareTheFilters(t *testing.T) {
	t.Parallel()
	sql := systemLogsSQL(t)
	cte := regexp.MustCompile(`(?s)WITH matching AS NOT MATERIALIZED \(\n.*?\n\)\n`)
	var first string
	for _, name := range []string{"ListLogs", "ListLogsByLevels", "CountLogs"} {
		got := cte.FindString(query(t, sql, name))
		switch {
		case got == "":
			t.Errorf("%s does not open with the matching CTE", name)
		case first == "":
			first = got
		case got != first:
			t.Errorf("%s's filters differ from ListLogs':\n%s\nListLogs:\n%s", name, got, first)
		}
	}
}
