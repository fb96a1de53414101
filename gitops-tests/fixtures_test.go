package gitopstests

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthCheckDir is Argo CD's resource_customizations layout for ConnectInstance.
var healthCheckDir = filepath.Join("..", "argocd", "resource_customizations", "connect.operators.dev", "ConnectInstance")

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

// loadHealthTests reads health_test.yaml and fails when a fixture in testdata/ is not
// covered by a case, so a new fixture cannot be added without an expectation.
func loadHealthTests(t *testing.T) []healthTestCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(healthCheckDir, "health_test.yaml"))
	if err != nil {
		t.Fatalf("reading health_test.yaml: %v", err)
	}
	var file healthTestFile
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatalf("parsing health_test.yaml: %v", err)
	}
	if len(file.Tests) == 0 {
		t.Fatal("health_test.yaml has no tests")
	}
	covered := map[string]bool{}
	for _, tc := range file.Tests {
		if tc.InputPath == "" || tc.HealthStatus.Status == "" {
			t.Fatalf("health_test.yaml case %+v lacks inputPath or healthStatus.status", tc)
		}
		covered[filepath.Clean(tc.InputPath)] = true
	}
	fixtures, err := filepath.Glob(filepath.Join(healthCheckDir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(fixtures)
	for _, fixture := range fixtures {
		rel, err := filepath.Rel(healthCheckDir, fixture)
		if err != nil {
			t.Fatal(err)
		}
		if !covered[rel] {
			t.Errorf("fixture %s has no case in health_test.yaml", rel)
		}
	}
	return file.Tests
}

// loadObject reads a fixture the way Argo CD and kstatus receive objects from the API
// server: as unstructured content, integers as int64.
func loadObject(t *testing.T, inputPath string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(healthCheckDir, inputPath))
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
	if obj.GetAPIVersion() != "connect.operators.dev/v1alpha1" || obj.GetKind() != "ConnectInstance" {
		t.Fatalf("%s is a %s %s, want a connect.operators.dev/v1alpha1 ConnectInstance", inputPath, obj.GetAPIVersion(), obj.GetKind())
	}
	return obj
}
