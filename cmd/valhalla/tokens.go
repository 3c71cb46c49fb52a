package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/contract"
)

var tokensUsage = `usage:
  valhalla tokens create --name NAME --scopes logs:read,logs:write [flags]
  valhalla tokens list [flags]
  valhalla tokens revoke NAME [flags]

The commands work on the database serve uses (--database-url, or the local
cluster under --data-dir, also while serve runs on it). create prints the
token once; only its hash is stored. Once revoke returns, every server
refuses the token within ` + auth.RevocationDelay.String() + `: a server hears the revocation from
PostgreSQL within milliseconds, and none trusts what it remembers of a
token for longer than that; a server that cannot reach the database
accepts no token at all (503).
`

// tokensCommand creates, lists and revokes bearer tokens.
func tokensCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, tokensUsage)
		return nil
	}
	sub := args[0]
	var name, scopeList string
	var reqRate, entryRate, readRate float64
	var inFlight int
	cfg, rest, err := parseConfig("tokens "+sub, databaseFlags, args[1:], getenv, stdout, stderr, func(fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&name, "name", "", "the token's name, stored as the actor of what it writes (required)")
			fs.StringVar(&scopeList, "scopes", "", "comma-separated scopes, e.g. logs:read,logs:write (required)")
			fs.Float64Var(&reqRate, "rate", 0, "requests per second this token may make, on each server (0: the server's --token-rate)")
			fs.Float64Var(&entryRate, "entry-rate", 0, "log entries per second this token may write, on each server (0: the server's --token-entry-rate)")
			fs.IntVar(&inFlight, "in-flight", 0, "requests this token may have in flight on each server (0: the server's --token-in-flight)")
			fs.Float64Var(&readRate, "read-rate", 0, "bytes of listing and feed pages this token may read per second, on each server (0: the server's --token-read-rate)")
		}
	})
	if err != nil {
		return err
	}
	allScopes, err := contract.Scopes()
	if err != nil {
		return err
	}
	var scopes []string
	switch {
	case sub == "create" && len(rest) == 0:
		if name == "" || scopeList == "" {
			return errors.New("tokens create: --name and --scopes are required")
		}
		for _, s := range strings.Split(scopeList, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScopes, s) {
				return fmt.Errorf("tokens create: unknown scope %q; the scopes are %s", s, strings.Join(allScopes, ", "))
			}
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	case sub == "list" && len(rest) == 0:
	case sub == "revoke" && len(rest) == 1:
	default:
		fmt.Fprint(stderr, tokensUsage)
		return fmt.Errorf("tokens: unexpected arguments %q", args)
	}

	pool, closeDB, err := openMigrated(ctx, cfg, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	tokens := auth.NewStore(pool)

	switch sub {
	case "create":
		var limits auth.Limits
		if reqRate > 0 {
			limits.Requests = &reqRate
		}
		if entryRate > 0 {
			limits.Entries = &entryRate
		}
		if inFlight > 0 {
			n := int32(min(inFlight, math.MaxInt32))
			limits.InFlight = &n
		}
		if readRate > 0 {
			limits.Read = &readRate
		}
		if reqRate < 0 || entryRate < 0 || inFlight < 0 || readRate < 0 {
			return fmt.Errorf("tokens create: %w", auth.ErrInvalidLimits)
		}
		token, err := tokens.CreateLimited(ctx, name, scopes, limits)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "created token %q with scopes %s; it is shown only now\n", name, strings.Join(scopes, ","))
		return nil
	case "revoke":
		if err := tokens.Revoke(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %q\n", rest[0])
		return nil
	}
	list, err := tokens.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPREFIX\tSCOPES\tCREATED\tREVOKED\tLIMITS")
	for _, tok := range list {
		revoked := "-"
		if tok.RevokedAt != nil {
			revoked = tok.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", tok.Name, auth.Prefix+tok.PublicID+"_…",
			strings.Join(tok.Scopes, ","), tok.CreatedAt.UTC().Format(time.RFC3339), revoked, limitsText(tok.Limits))
	}
	return tw.Flush()
}

// limitsText shows a token's overrides as tokens create takes them, or
// "default".
func limitsText(l auth.Limits) string {
	var parts []string
	if l.Requests != nil {
		parts = append(parts, "rate="+strconv.FormatFloat(*l.Requests, 'f', -1, 64))
	}
	if l.Entries != nil {
		parts = append(parts, "entry-rate="+strconv.FormatFloat(*l.Entries, 'f', -1, 64))
	}
	if l.InFlight != nil {
		parts = append(parts, "in-flight="+strconv.Itoa(int(*l.InFlight)))
	}
	if l.Read != nil {
		parts = append(parts, "read-rate="+strconv.FormatFloat(*l.Read, 'f', -1, 64))
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ",")
}
