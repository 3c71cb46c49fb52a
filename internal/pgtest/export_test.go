package pgtest

import "testing"

// NewDatabaseAt is NewDatabase on the server databaseURL names, as with
// DATABASE_URL set for Main.
func NewDatabaseAt(t testing.TB, databaseURL string) string {
	t.Helper()
	srv, err := openURLServer(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return newDatabase(t, srv)
}

// WithDatabase is withDatabase.
var WithDatabase = withDatabase
