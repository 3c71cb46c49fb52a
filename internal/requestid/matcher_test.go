package requestid

import (
	"regexp"
	"testing"
)

// TestMatcherIsTheRegexp: the rune-by-rune check of a ^[class]+$ pattern
// agrees with the regular expression, and other patterns use the latter.
func TestMatcherIsTheRegexp(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "a", "abc", "a-b", "A", "a b", "é", "\xff", "ab1", "-", "a\x00", "ab-12"}
	for _, pattern := range []string{
		`^[A-Za-z0-9._:-]+$`, `^[^\x00]*$`, `^[a-zé]+$`, `^[a-z]+-[0-9]+$`, `[a-z]`, `^(ab|cd)+$`,
	} {
		re, match := regexp.MustCompile(pattern), matcher(pattern)
		for _, in := range inputs {
			if got, want := match(in), re.MatchString(in); got != want {
				t.Errorf("pattern %s on %q: %v, the regexp says %v", pattern, in, got, want)
			}
		}
	}
}
