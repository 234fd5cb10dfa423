package s3test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// IsolateAWS keeps the developer's AWS setup (profiles, credentials files,
// AWS_* variables, instance metadata) away from the S3 clients a test
// builds, so that they use only what the test configures. AWS_CA_BUNDLE
// stays: these machines set it, and the daemon sees it too.
func IsolateAWS(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, v := range os.Environ() {
		name, _, _ := strings.Cut(v, "=")
		if strings.HasPrefix(name, "AWS_") && name != "AWS_CA_BUNDLE" &&
			name != "AWS_CONFIG_FILE" && name != "AWS_SHARED_CREDENTIALS_FILE" && name != "AWS_EC2_METADATA_DISABLED" {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}
