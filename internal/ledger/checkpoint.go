package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors about checkpoints; test with errors.Is.
var (
	// ErrBadSignature means a checkpoint is not signed by the expected key.
	ErrBadSignature = errors.New("checkpoint signature is not valid for this key")
	// ErrMalformedCheckpoint means a note's text is not a checkpoint.
	ErrMalformedCheckpoint = errors.New("not a checkpoint")
)

// Checkpoint is the body of a C2SP checkpoint (c2sp.org/tlog-checkpoint):
// the origin line, the tree size and the root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// String is the checkpoint's note text: three lines, each ending in "\n".
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint parses a checkpoint's note text (extension lines after
// the root are allowed and ignored). It returns ErrMalformedCheckpoint
// (wrapped) for anything else.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || lines[0] == "\n" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrMalformedCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	size, err := strconv.ParseInt(strings.TrimSuffix(lines[1], "\n"), 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != strings.TrimSuffix(lines[1], "\n") {
		return Checkpoint{}, fmt.Errorf("%w: size %q", ErrMalformedCheckpoint, lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != tlog.HashSize || !strings.HasSuffix(lines[2], "\n") {
		return Checkpoint{}, fmt.Errorf("%w: root %q", ErrMalformedCheckpoint, lines[2])
	}
	return Checkpoint{Origin: origin, Size: size, Root: tlog.Hash(root)}, nil
}

// OpenCheckpoint verifies the signed note msg with verifierKey (note
// format, name+hash+key) and returns its checkpoint, whose origin must be
// the key's name. It returns ErrBadSignature or ErrMalformedCheckpoint
// (wrapped), or an error when verifierKey does not parse.
func OpenCheckpoint(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrMalformedCheckpoint, c.Origin, v.Name())
	}
	return c, nil
}

// Key is the ledger's signing key.
type Key struct {
	signer note.Signer
	// Verifier is the verifier key in the note format, name+hash+key.
	Verifier string
}

// Name is the key's name, which is also every checkpoint's origin.
func (k *Key) Name() string { return k.signer.Name() }

// Sign signs c as a note.
func (k *Key) Sign(c Checkpoint) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: c.String()}, k.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// ParseKey parses a signer key in the note format
// (PRIVATE+KEY+name+hash+key) and derives its verifier key.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	// (base64 has '+' in its alphabet, and names have none)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, errors.New("ledger key: not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, errors.New("ledger key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	return &Key{signer: signer, Verifier: vkey}, nil
}

// GenerateKey returns a fresh signer key named name, in the note format.
func GenerateKey(name string) (string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("generate ledger key: %w", err)
	}
	return skey, nil
}

// LoadOrCreateKey reads the signer key in path or, when there is no such
// file, generates one (named valhalla-ledger-<8 random hex digits>) and
// writes it there with mode 0600. Several servers may start at once on one
// file: the key is written to a temporary file and linked into place, so
// exactly one key wins and every server reads it. It returns an error
// when the file cannot be read or written or holds no valid key.
func LoadOrCreateKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read ledger key: %w", err)
	}
	return ParseKey(string(b))
}

func createKey(path string) error {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("generate ledger key: %w", err)
	}
	skey, err := GenerateKey("valhalla-ledger-" + hex.EncodeToString(suffix[:]))
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create ledger key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".ledger-key-*")
	if err != nil {
		return fmt.Errorf("write ledger key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(skey + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("write ledger key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("write ledger key: %w", err)
	}
	return nil
}
