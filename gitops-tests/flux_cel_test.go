package gitopstests

import (
	"context"
	"errors"
	"fmt"
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
	return fluxExpressionsFromDocsFor(t, "ConnectInstance")
}

// fluxExpressionsFromDocsFor returns the healthCheckExprs for kind of the Kustomization
// examples in docs/gitops.md; there must be exactly one.
func fluxExpressionsFromDocsFor(t *testing.T, kind string) fluxHealthCheckExprs {
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
				if e.APIVersion == "connect.operators.dev/v1alpha1" && e.Kind == kind {
					found = append(found, e)
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/gitops.md has %d Kustomization healthCheckExprs for %s, want exactly 1", len(found), kind)
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
	"paused":                  status.InProgressStatus,
	"observed-drifted":        status.CurrentStatus,
	"adoption-mismatch":       status.FailedStatus,
	"deletion-protected":      status.FailedStatus,
	"replicating":             status.InProgressStatus,
	"replication-failed":      status.FailedStatus,
	// A condition for an older generation: InProgress, never Current or Failed, although
	// status.observedGeneration is current (where plain kstatus has a gap).
	"ready-condition-stale":   status.InProgressStatus,
	"stalled-condition-stale": status.InProgressStatus,
	// Refused before any AWS call: Stalled until the account exists or admits the namespace.
	"account-not-found":   status.FailedStatus,
	"account-not-allowed": status.FailedStatus,
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

// Beyond the fixtures: whichever condition the health checks read (Ready, Reconciling,
// Stalled) is left from an older generation, with status.observedGeneration current, the
// Argo CD script says Progressing naming that condition and the documented Flux expressions
// say InProgress, never Healthy/Current or Degraded/Failed. A condition for the current
// generation beside it changes nothing.
func TestStaleConditionsAreProgressingForArgoCDAndFlux(t *testing.T) {
	script := readHealthScript(t)
	exprs := fluxExpressionsFromDocs(t)
	checked := 0
	for _, ready := range []string{"", "True", "False", "Unknown"} {
		for _, reconciling := range []bool{false, true} {
			for _, stalled := range []bool{false, true} {
				if reconciling && stalled {
					continue // the operator never sets both True
				}
				present := []string{}
				if ready != "" {
					present = append(present, "Ready")
				}
				if reconciling {
					present = append(present, "Reconciling")
				}
				if stalled {
					present = append(present, "Stalled")
				}
				for _, staleType := range present {
					obj := syntheticConnectInstance(ready, reconciling, stalled, false, false)
					conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
					for _, c := range conditions {
						if condition := c.(map[string]any); condition["type"] == staleType {
							condition["observedGeneration"] = int64(1)
						}
					}
					if err := unstructured.SetNestedSlice(obj.Object, conditions, "status", "conditions"); err != nil {
						t.Fatal(err)
					}
					name := fmt.Sprintf("ready=%q reconciling=%t stalled=%t stale=%s", ready, reconciling, stalled, staleType)
					health, message, err := runHealthScript(t, script, obj.Object)
					if err != nil {
						t.Fatalf("%s: health.lua: %v", name, err)
					}
					if health != "Progressing" || !strings.Contains(message, "the "+staleType+" condition is for generation 1") {
						t.Errorf("%s: Argo CD says %s (%q), want Progressing naming the stale %s condition", name, health, message, staleType)
					}
					flux, err := fluxStatus(t, exprs, obj)
					if err != nil {
						t.Fatalf("%s: Flux: %v", name, err)
					}
					if flux != status.InProgressStatus {
						t.Errorf("%s: Flux says %s, want InProgress", name, flux)
					}
					checked++
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d combinations checked", checked)
	}
}
