package main

import (
	"context"
	"fmt"
	"io"

	"github.com/valhalla-platform/valhalla/internal/ledger"
)

const ledgerUsage = `usage: valhalla ledger key [--data-dir DIR] [--ledger-key-file FILE]

  key   print the verifier key of the ledger's signing key (generating the
        key when there is none yet), for valhalla verify --key
`

// ledgerCommand runs `valhalla ledger key`.
func ledgerCommand(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, ledgerUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "key" {
		fmt.Fprint(stderr, ledgerUsage)
		return fmt.Errorf("ledger: want the subcommand key")
	}
	cfg, rest, err := parseConfig("ledger key", ledgerFlags, args[1:], getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("ledger key: unexpected arguments %q", rest)
	}
	key, err := ledger.LoadOrCreateKey(cfg.LedgerKeyFile)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key.Verifier)
	return nil
}
