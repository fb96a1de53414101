package gitopstests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// fluxHealthCheckExprs is one entry of a Flux Kustomization's spec.healthCheckExprs.
type fluxHealthCheckExprs struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

// fluxExpressionsFromDocs returns the ConnectInstance healthCheckExprs of the Kustomization
// example in docs/gitops.md, so the documented expressions are the tested ones.
func fluxExpressionsFromDocs(t *testing.T) fluxHealthCheckExprs {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "gitops.md"))
	if err != nil {
		t.Fatalf("reading docs/gitops.md: %v", err)
	}
	fence := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	var found []fluxHealthCheckExprs
	for _, block := range fence.FindAllSubmatch(raw, -1) {
		for _, doc := range splitYAMLDocuments(block[1]) {
			var obj struct {
				Kind string `json:"kind"`
				Spec struct {
					HealthCheckExprs []fluxHealthCheckExprs `json:"healthCheckExprs"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("docs/gitops.md has a YAML block that does not parse: %v\n%s", err, doc)
			}
			if obj.Kind != "Kustomization" {
				continue
			}
			for _, e := range obj.Spec.HealthCheckExprs {
				if e.APIVersion == "connect.operators.dev/v1alpha1" && e.Kind == "ConnectInstance" {
					found = append(found, e)
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/gitops.md has %d Kustomization healthCheckExprs for ConnectInstance, want exactly 1", len(found))
	}
	return found[0]
}

func splitYAMLDocuments(block []byte) [][]byte {
	var docs [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(block), -1) {
		if strings.TrimSpace(doc) != "" {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

// fluxProgram parses an expression in the CEL environment Flux's healthCheckExprs use:
// parsed, not compiled (the object's top-level fields are untyped variables), with
// optional types and the strings, sets and encoders extensions.
func fluxProgram(t *testing.T, expr string) cel.Program {
	t.Helper()
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		t.Fatal(err)
	}
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		t.Fatalf("CEL expression %q does not parse: %v", expr, issues.Err())
	}
	program, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		t.Fatalf("CEL expression %q: %v", expr, err)
	}
	return program
}

var errFluxEvaluation = errors.New("a health check expression failed to evaluate")

// fluxStatus follows Flux's documented evaluation of healthCheckExprs (RFC 0009): a
// status.observedGeneration different from metadata.generation is InProgress; then
// inProgress, failed and current are tried in that order and the first true one wins;
// none true is InProgress. An evaluation error leaves the object Unknown and Flux keeps
// waiting until its timeout.
func fluxStatus(t *testing.T, exprs fluxHealthCheckExprs, obj *unstructured.Unstructured) (status.Status, error) {
	t.Helper()
	observed, hasObserved, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if hasObserved && observed != obj.GetGeneration() {
		return status.InProgressStatus, nil
	}
	for _, step := range []struct {
		expr   string
		result status.Status
	}{
		{exprs.InProgress, status.InProgressStatus},
		{exprs.Failed, status.FailedStatus},
		{exprs.Current, status.CurrentStatus},
	} {
		if step.expr == "" {
			continue
		}
		value, _, err := fluxProgram(t, step.expr).ContextEval(context.Background(), obj.Object)
		if err != nil {
			return status.UnknownStatus, errors.Join(errFluxEvaluation, err)
		}
		matched, ok := value.(types.Bool)
		if !ok {
			t.Fatalf("CEL expression %q returned %v, want a bool", step.expr, value)
		}
		if matched {
			return step.result, nil
		}
	}
	return status.InProgressStatus, nil
}

var fluxExpectations = map[string]status.Status{
	// No status yet: the expressions cannot evaluate (there is no `status` field), so Flux
	// keeps waiting instead of calling the object ready as plain kstatus does.
	"no-status":               status.UnknownStatus,
	"initializing":            status.InProgressStatus,
	"creating":                status.InProgressStatus,
	"ready":                   status.CurrentStatus,
	"throttled":               status.InProgressStatus,
	"updating":                status.InProgressStatus,
	"generation-behind":       status.InProgressStatus,
	"stalled-creation-failed": status.FailedStatus,
	"quota-exceeded":          status.FailedStatus,
	"access-denied":           status.InProgressStatus,
	"instance-gone":           status.FailedStatus,
	"deleting":                status.InProgressStatus,
	"deleting-attempt-limit":  status.FailedStatus,
}

func TestFluxHealthCheckExprsFromTheDocsClassifyEveryFixture(t *testing.T) {
	exprs := fluxExpressionsFromDocs(t)
	if exprs.Current == "" {
		t.Fatal("the documented healthCheckExprs has no `current` expression (Flux requires it)")
	}
	for _, tc := range loadHealthTests(t) {
		name := strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, ok := fluxExpectations[name]
			if !ok {
				t.Fatalf("no Flux expectation for fixture %s", tc.InputPath)
			}
			got, err := fluxStatus(t, exprs, loadObject(t, tc.InputPath))
			if want == status.UnknownStatus {
				if !errors.Is(err, errFluxEvaluation) {
					t.Fatalf("Flux status = %s, %v; want an evaluation error (Unknown, keep waiting)", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("evaluating the documented expressions: %v", err)
			}
			if got != want {
				t.Fatalf("Flux status = %s, want %s", got, want)
			}
		})
	}
}
