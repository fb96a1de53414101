package gitopstests

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// ConnectAccount has one condition, Ready, and no Reconciling/Stalled: kstatus falls back
// to Ready (True: Current, anything else: InProgress), so refused credentials are never
// Failed for it, only InProgress until a timeout. The Argo CD script and the Flux
// healthCheckExprs in docs/gitops.md read Ready's reason as well (docs/gitops.md,
// "ConnectAccount").

// kstatusAccountExpectations is what kstatus computes for each ConnectAccount fixture.
var kstatusAccountExpectations = map[string]status.Status{
	"no-status":          status.CurrentStatus,
	"ready":              status.CurrentStatus,
	"ready-assumed-role": status.CurrentStatus,
	// Refused credentials are not Stalled: plain kstatus sees only Ready=False, so it waits
	// (InProgress) where Argo CD says Degraded.
	"assume-role-failed": status.InProgressStatus,
	"access-denied":      status.InProgressStatus,
	"aws-error":          status.InProgressStatus,
	"generation-behind":  status.InProgressStatus,
	// A Ready condition for an older generation, status.observedGeneration current: kstatus
	// reads it as it is.
	"ready-condition-stale":  status.CurrentStatus,
	"failed-condition-stale": status.InProgressStatus,
	"deleting-in-use":        status.TerminatingStatus,
}

// kstatusAccountGaps are the ConnectAccount fixtures where plain kstatus disagrees with the
// Argo CD script (the documented Flux healthCheckExprs close them).
var kstatusAccountGaps = map[string]bool{
	"no-status":             true,
	"assume-role-failed":    true,
	"access-denied":         true,
	"ready-condition-stale": true,
}

// fluxAccountExpectations is what the documented ConnectAccount healthCheckExprs give.
var fluxAccountExpectations = map[string]status.Status{
	// No status: the expressions cannot evaluate, Flux keeps waiting.
	"no-status":          status.UnknownStatus,
	"ready":              status.CurrentStatus,
	"ready-assumed-role": status.CurrentStatus,
	"assume-role-failed": status.FailedStatus,
	"access-denied":      status.FailedStatus,
	// Transient: the operator retries; Flux waits (and fails only at its timeout).
	"aws-error":              status.InProgressStatus,
	"generation-behind":      status.InProgressStatus,
	"ready-condition-stale":  status.InProgressStatus,
	"failed-condition-stale": status.InProgressStatus,
	// Setting deletionTimestamp bumps a custom resource's generation: not observed yet.
	"deleting-in-use": status.InProgressStatus,
}

func fixtureName(tc healthTestCase) string {
	return strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")
}

func TestKstatusComputesTheExpectedStatusForEveryConnectAccountFixture(t *testing.T) {
	for _, tc := range connectAccountCheck.loadTests(t) {
		name := fixtureName(tc)
		t.Run(name, func(t *testing.T) {
			want, ok := kstatusAccountExpectations[name]
			if !ok {
				t.Fatalf("no kstatus expectation for ConnectAccount fixture %s", tc.InputPath)
			}
			result, err := status.Compute(connectAccountCheck.loadObject(t, tc.InputPath))
			if err != nil {
				t.Fatalf("kstatus.Compute: %v", err)
			}
			if result.Status != want {
				t.Fatalf("kstatus = %s (%q), want %s", result.Status, result.Message, want)
			}
		})
	}
}

func TestArgoCDConnectAccountHealthAgreesWithKstatusOutsideTheGaps(t *testing.T) {
	agrees := map[string][]status.Status{
		"Healthy":     {status.CurrentStatus},
		"Degraded":    {status.FailedStatus},
		"Progressing": {status.InProgressStatus, status.TerminatingStatus},
	}
	compared := 0
	for _, tc := range connectAccountCheck.loadTests(t) {
		name := fixtureName(tc)
		result, err := status.Compute(connectAccountCheck.loadObject(t, tc.InputPath))
		if err != nil {
			t.Fatalf("%s: kstatus.Compute: %v", name, err)
		}
		agreed := slices.Contains(agrees[tc.HealthStatus.Status], result.Status)
		if kstatusAccountGaps[name] {
			if agreed {
				t.Errorf("%s: listed as a kstatus gap, but Argo CD (%s) and kstatus (%s) agree", name, tc.HealthStatus.Status, result.Status)
			}
			continue
		}
		if !agreed {
			t.Errorf("%s: Argo CD says %s but kstatus says %s", name, tc.HealthStatus.Status, result.Status)
		}
		compared++
	}
	if compared < 4 {
		t.Fatalf("only %d fixtures compared", compared)
	}
}

func TestFluxHealthCheckExprsFromTheDocsClassifyEveryConnectAccountFixture(t *testing.T) {
	exprs := fluxExpressionsFromDocsFor(t, "ConnectAccount")
	if exprs.Current == "" {
		t.Fatal("the documented ConnectAccount healthCheckExprs has no `current` expression (Flux requires it)")
	}
	for _, tc := range connectAccountCheck.loadTests(t) {
		name := fixtureName(tc)
		t.Run(name, func(t *testing.T) {
			want, ok := fluxAccountExpectations[name]
			if !ok {
				t.Fatalf("no Flux expectation for ConnectAccount fixture %s", tc.InputPath)
			}
			got, err := fluxStatus(t, exprs, connectAccountCheck.loadObject(t, tc.InputPath))
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

// Beyond the fixtures: for every Ready the operator writes (or none), the generation being
// observed or not, and Ready being stale or not, the Argo CD script and the documented Flux
// expressions agree: Healthy is Current, Degraded is Failed, Progressing is InProgress.
// (Deletion is left out: Flux checks the health of applied objects, and a real deletion
// bumps the generation, see deleting-in-use.yaml.)
func TestArgoCDAndFluxAgreeOnEveryConnectAccountState(t *testing.T) {
	script := connectAccountCheck.readScript(t)
	exprs := fluxExpressionsFromDocsFor(t, "ConnectAccount")
	agrees := map[string]status.Status{
		"Healthy":     status.CurrentStatus,
		"Degraded":    status.FailedStatus,
		"Progressing": status.InProgressStatus,
	}
	readies := []struct{ status, reason string }{
		{"", ""},
		{"True", "CredentialsVerified"},
		{"False", "AssumeRoleFailed"},
		{"False", "AccessDenied"},
		{"False", "AwsError"},
		{"Unknown", "Verifying"},
	}
	seen := map[string]bool{}
	checked := 0
	for _, ready := range readies {
		for _, behind := range []bool{false, true} {
			for _, stale := range []bool{false, true} {
				if stale && ready.status == "" {
					continue
				}
				obj := syntheticConnectAccount(ready.status, ready.reason, behind, stale)
				name := fmt.Sprintf("ready=%s/%s behind=%t stale=%t", ready.status, ready.reason, behind, stale)
				health, message, err := runHealthScript(t, script, obj.Object)
				if err != nil {
					t.Fatalf("%s: health.lua: %v", name, err)
				}
				if message == "" {
					t.Errorf("%s: health.lua returned an empty message", name)
				}
				flux, err := fluxStatus(t, exprs, obj)
				if err != nil {
					t.Fatalf("%s: Flux: %v", name, err)
				}
				if agrees[health] != flux {
					t.Errorf("%s: Argo CD says %s (%q) but Flux says %s", name, health, message, flux)
				}
				seen[health] = true
				checked++
			}
		}
	}
	for _, health := range []string{"Healthy", "Degraded", "Progressing"} {
		if !seen[health] {
			t.Errorf("no combination is %s", health)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d combinations checked", checked)
	}
}

func syntheticConnectAccount(ready, reason string, behind, stale bool) *unstructured.Unstructured {
	var conditions []any
	if ready != "" {
		observed := int64(2)
		if stale {
			observed = 1
		}
		conditions = append(conditions, map[string]any{
			"type": "Ready", "status": ready, "reason": reason,
			"message": "Ready is " + ready + " (" + reason + ")", "observedGeneration": observed,
			"lastTransitionTime": "2026-03-02T09:14:05Z",
		})
	}
	observed := int64(2)
	if behind {
		observed = 1
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "connect.operators.dev/v1alpha1",
		"kind":       "ConnectAccount",
		"metadata":   map[string]any{"name": "synthetic", "generation": int64(2)},
		"status":     map[string]any{"observedGeneration": observed, "conditions": conditions},
	}}
}
