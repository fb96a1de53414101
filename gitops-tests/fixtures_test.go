package gitopstests

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthCheck is one kind's directory in Argo CD's resource_customizations layout
// (health.lua, health_test.yaml, testdata/).
type healthCheck struct {
	Kind string
	Dir  string
}

func newHealthCheck(kind string) healthCheck {
	return healthCheck{Kind: kind, Dir: filepath.Join("..", "argocd", "resource_customizations", "connect.operators.dev", kind)}
}

var (
	connectInstanceCheck = newHealthCheck("ConnectInstance")
	connectAccountCheck  = newHealthCheck("ConnectAccount")
	// healthChecks are every kind with a health check; the argocd-cm snippet installs them all.
	healthChecks = []healthCheck{connectInstanceCheck, connectAccountCheck}
)

// healthCheckDir is Argo CD's resource_customizations layout for ConnectInstance.
var healthCheckDir = connectInstanceCheck.Dir

// healthTestFile mirrors Argo CD's health_test.yaml format.
type healthTestFile struct {
	Tests []healthTestCase `json:"tests"`
}

type healthTestCase struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
}

// loadHealthTests reads the ConnectInstance health_test.yaml (see healthCheck.loadTests).
func loadHealthTests(t *testing.T) []healthTestCase {
	t.Helper()
	return connectInstanceCheck.loadTests(t)
}

// loadTests reads health_test.yaml and fails when a fixture in testdata/ is not covered by
// a case, so a new fixture cannot be added without an expectation.
func (h healthCheck) loadTests(t *testing.T) []healthTestCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(h.Dir, "health_test.yaml"))
	if err != nil {
		t.Fatalf("reading %s health_test.yaml: %v", h.Kind, err)
	}
	var file healthTestFile
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatalf("parsing %s health_test.yaml: %v", h.Kind, err)
	}
	if len(file.Tests) == 0 {
		t.Fatalf("%s health_test.yaml has no tests", h.Kind)
	}
	covered := map[string]bool{}
	for _, tc := range file.Tests {
		if tc.InputPath == "" || tc.HealthStatus.Status == "" {
			t.Fatalf("%s health_test.yaml case %+v lacks inputPath or healthStatus.status", h.Kind, tc)
		}
		covered[filepath.Clean(tc.InputPath)] = true
	}
	fixtures, err := filepath.Glob(filepath.Join(h.Dir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(fixtures)
	for _, fixture := range fixtures {
		rel, err := filepath.Rel(h.Dir, fixture)
		if err != nil {
			t.Fatal(err)
		}
		if !covered[rel] {
			t.Errorf("%s fixture %s has no case in health_test.yaml", h.Kind, rel)
		}
	}
	return file.Tests
}

// loadObject reads a ConnectInstance fixture (see healthCheck.loadObject).
func loadObject(t *testing.T, inputPath string) *unstructured.Unstructured {
	t.Helper()
	return connectInstanceCheck.loadObject(t, inputPath)
}

// loadObject reads a fixture the way Argo CD and kstatus receive objects from the API
// server: as unstructured content, integers as int64.
func (h healthCheck) loadObject(t *testing.T, inputPath string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(h.Dir, inputPath))
	if err != nil {
		t.Fatalf("reading %s: %v", inputPath, err)
	}
	jsonBytes, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("converting %s to JSON: %v", inputPath, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(jsonBytes); err != nil {
		t.Fatalf("decoding %s: %v", inputPath, err)
	}
	if obj.GetAPIVersion() != "connect.operators.dev/v1alpha1" || obj.GetKind() != h.Kind {
		t.Fatalf("%s is a %s %s, want a connect.operators.dev/v1alpha1 %s", inputPath, obj.GetAPIVersion(), obj.GetKind(), h.Kind)
	}
	return obj
}

// readScript returns the kind's health.lua.
func (h healthCheck) readScript(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(h.Dir, "health.lua"))
	if err != nil {
		t.Fatalf("reading %s health.lua: %v", h.Kind, err)
	}
	return string(raw)
}
