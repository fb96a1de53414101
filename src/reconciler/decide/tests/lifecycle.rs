//! The lifecycle rows of the behaviour table: finding or creating the instance, following
//! its creation, the AWS error table, adoption of `spec.instanceId`, pause, the account's
//! refusal and attempt budget, what AWS does not document (an instance not visible yet);
//! then the checks of tokens, recorded times and messages these rows give. Deleting the
//! instance and deletion protection are in `deletion.rs`.

use super::*;

fn as_saml(spec: &mut ConnectInstanceSpec) {
    adopting(spec);
    spec.identity_management_type = IdentityManagementType::Saml;
}

fn other_alias(spec: &mut ConnectInstanceSpec) {
    adopting(spec);
    spec.instance_alias = Some("another-center".into());
}

pub(super) fn rows() -> Vec<Row> {
    use ErrorKind as K;
    use Operation as O;
    let poll = secs(5);
    let drift = minutes(10);
    vec![
        // ---- Apply: finding or creating the instance
        unrecorded(row(
            "no instance recorded, none found: CreateInstance with the UID token",
            Path::Apply,
            Observation::Lookup(Lookup::Nothing),
            None,
            &["CreateInstance"],
            Then::ObserveAgain,
            Failures::Keep,
        )),
        unrecorded(row(
            "a creation waiting for its slot skips the lookup and creates",
            Path::Apply,
            Observation::Lookup(Lookup::Skipped),
            None,
            &["CreateInstance"],
            Then::ObserveAgain,
            Failures::Keep,
        )),
        unrecorded(row(
            "CreateInstance answered: the id is recorded, then creation is polled",
            Path::Apply,
            Observation::Created {
                id: ID.into(),
                arn: ARN.into(),
            },
            Some("Creating"),
            &[],
            Then::Requeue(poll, Jitter::None),
            Failures::Reset,
        )),
        unrecorded(row(
            "an instance with our uid tag is adopted, never re-created",
            Path::Apply,
            Observation::Lookup(Lookup::Ours(summary(ID, "contact-center"))),
            Some("Creating"),
            &[],
            Then::ObserveAgain,
            Failures::Keep,
        )),
        unrecorded(row(
            "an alias held by an instance without our tag is AliasConflict",
            Path::Apply,
            Observation::Lookup(Lookup::Foreign(summary(ID, "contact-center"))),
            Some("AliasConflict"),
            &[],
            spread(drift),
            Failures::Keep,
        )),
        // ---- Apply: following the instance
        row(
            "CREATION_IN_PROGRESS: Creating, polled at the shared poll however long it takes",
            Path::Apply,
            described(InstanceState::CreationInProgress, true, &[]),
            Some("Creating"),
            &[],
            Then::Requeue(poll, Jitter::None),
            Failures::Reset,
        ),
        row(
            "CREATION_FAILED: Stalled, never re-created",
            Path::Apply,
            described(InstanceState::CreationFailed, true, &[]),
            Some("CreationFailed"),
            &[],
            spread(drift),
            Failures::Keep,
        ),
        row(
            "the recorded instance is gone: InstanceNotFound, no silent re-create",
            Path::Apply,
            Observation::Gone,
            Some("InstanceNotFound"),
            &[],
            spread(drift),
            Failures::Keep,
        ),
        row(
            "a state this version does not know: AwsError with backoff",
            Path::Apply,
            described(InstanceState::Unknown("PAUSED".into()), true, &[]),
            Some("AwsError"),
            &[],
            spread(secs(2)),
            Failures::Count,
        ),
        // ---- Apply: the error table
        unrecorded(row(
            "ServiceQuotaExceeded on create: QuotaExceeded, retry after hours",
            Path::Apply,
            failed(O::CreateInstance, K::InstanceLimitExceeded),
            Some("QuotaExceeded"),
            &[],
            spread(minutes(120)),
            Failures::Count,
        )),
        unrecorded(row(
            "the 30-day attempt limit on create: QuotaExceeded, hours",
            Path::Apply,
            failed(O::CreateInstance, K::LifecycleAttemptLimitExceeded),
            Some("QuotaExceeded"),
            &[],
            spread(minutes(120)),
            Failures::Count,
        )),
        after_failures(
            row(
                "throttled: exponential backoff from the failure count",
                Path::Apply,
                failed(O::DescribeInstance, K::Throttled),
                Some("Throttled"),
                &[],
                spread(secs(16)),
                Failures::Count,
            ),
            3,
        ),
        row(
            "AccessDenied: slow retry",
            Path::Apply,
            failed(O::DescribeInstance, K::AccessDenied),
            Some("AccessDenied"),
            &[],
            spread(minutes(5)),
            Failures::Count,
        ),
        unrecorded(row(
            "InvalidRequest on create: InvalidSpec, waits for a spec change",
            Path::Apply,
            failed(O::CreateInstance, K::InvalidRequest),
            Some("InvalidSpec"),
            &[],
            spread(drift),
            Failures::Count,
        )),
        after_failures(
            row(
                "5xx / timeout: backoff, capped",
                Path::Apply,
                failed(O::ListInstanceAttributes, K::Transient),
                Some("AwsError"),
                &[],
                spread(minutes(5)),
                Failures::Count,
            ),
            30,
        ),
        row(
            "refused by our own rate limiter: nothing reported, wait for the slot",
            Path::Apply,
            failed(O::DescribeInstance, K::RateLimited),
            None,
            &[],
            Then::Requeue(Duration::from_millis(700), Jitter::Slot),
            Failures::Keep,
        ),
        // ---- Adoption (spec.instanceId): never a lookup, never a create
        with(
            unrecorded(row(
                "adopting a matching, untagged instance: recorded, our uid tag added",
                Path::Apply,
                described(InstanceState::Active, true, &[("team", "voice")]),
                Some("Updating"),
                &["TagResource"],
                Then::ObserveAgain,
                Failures::Keep,
            )),
            adopting,
        ),
        with(
            unrecorded(row(
                "adopting an instance of another identity type: AdoptionMismatch, nothing written",
                Path::Apply,
                in_sync(),
                Some("AdoptionMismatch"),
                &[],
                spread(drift),
                Failures::Keep,
            )),
            as_saml,
        ),
        with(
            unrecorded(row(
                "adopting an instance with another alias: AdoptionMismatch",
                Path::Apply,
                in_sync(),
                Some("AdoptionMismatch"),
                &[],
                spread(drift),
                Failures::Keep,
            )),
            other_alias,
        ),
        with(
            unrecorded(row(
                "adopting an instance another object owns: AlreadyManaged, never taken over",
                Path::Apply,
                described(
                    InstanceState::Active,
                    true,
                    &[("team", "voice"), (UID_TAG, "someone-else")],
                ),
                Some("AlreadyManaged"),
                &[],
                spread(drift),
                Failures::Keep,
            )),
            adopting,
        ),
        with(
            unrecorded(row(
                "adopting an instance that does not exist: InstanceNotFound, nothing created",
                Path::Apply,
                Observation::Gone,
                Some("InstanceNotFound"),
                &[],
                spread(drift),
                Failures::Keep,
            )),
            adopting,
        ),
        with(
            row(
                "an adopted instance converges like any other",
                Path::Apply,
                in_sync(),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            adopting,
        ),
        // ---- Paused: no AWS call, conditions kept
        paused(row(
            "paused: nothing asked, nothing written, woken by the annotation",
            Path::Apply,
            Observation::NotAsked,
            None,
            &[],
            Then::Idle,
            Failures::Keep,
        )),
        paused(row(
            "paused while being deleted under Delete: the finalizer stays",
            Path::Cleanup,
            Observation::NotAsked,
            None,
            &[],
            pending(drift),
            Failures::Keep,
        )),
        paused(retained(row(
            "paused while being deleted under Retain: released",
            Path::Cleanup,
            Observation::NotAsked,
            None,
            &[],
            Then::Release,
            Failures::Keep,
        ))),
        // ---- What AWS does not document: safe under either answer
        created_ago(
            row(
                "just created and not visible yet: Creating, polled, never InstanceNotFound",
                Path::Apply,
                Observation::Gone,
                Some("Creating"),
                &[],
                Then::Requeue(poll, Jitter::None),
                Failures::Keep,
            ),
            60,
        ),
        created_ago(
            row(
                "created long ago and not found: InstanceNotFound",
                Path::Apply,
                Observation::Gone,
                Some("InstanceNotFound"),
                &[],
                spread(drift),
                Failures::Keep,
            ),
            3600,
        ),
        failed_then_vanished(row(
            "a failed instance AWS removed: still CreationFailed, never re-created",
            Path::Apply,
            Observation::Gone,
            Some("CreationFailed"),
            &[],
            spread(drift),
            Failures::Keep,
        )),
        created_ago(
            row(
                "deleting one not visible yet: the finalizer stays until it is",
                Path::Cleanup,
                Observation::Gone,
                Some("Deleting"),
                &[],
                Then::Pending(poll, Jitter::None),
                Failures::Keep,
            ),
            60,
        ),
        row(
            "deleting one still being created: wait for creation to settle, no DeleteInstance yet",
            Path::Cleanup,
            described(InstanceState::CreationInProgress, true, &[]),
            Some("Deleting"),
            &[],
            Then::Pending(poll, Jitter::None),
            Failures::Keep,
        ),
        row(
            "deleting a failed instance: DeleteInstance",
            Path::Cleanup,
            described(InstanceState::CreationFailed, true, &[]),
            None,
            &["DeleteInstance"],
            Then::ObserveAgain,
            Failures::Keep,
        ),
        failed_then_vanished(row(
            "deleting a failed instance AWS removed: done",
            Path::Cleanup,
            Observation::Gone,
            None,
            &[],
            Then::Release,
            Failures::Reset,
        )),
        seen(created_ago(
            row(
                "just created, seen since, now not found: InstanceNotFound",
                Path::Apply,
                Observation::Gone,
                Some("InstanceNotFound"),
                &[],
                spread(drift),
                Failures::Keep,
            ),
            60,
        )),
        deleting_since(
            created_ago(
                row(
                    "just created, deleted since: not found means deleted",
                    Path::Cleanup,
                    Observation::Gone,
                    None,
                    &[],
                    Then::Release,
                    Failures::Reset,
                ),
                60,
            ),
            30,
        ),
        // ---- Accounts: a refusing account means no AWS call at all
        unrecorded(refused(
            row(
                "the account does not exist: AccountNotFound, nothing asked of AWS",
                Path::Apply,
                Observation::NotAsked,
                Some("AccountNotFound"),
                &[],
                spread(drift),
                Failures::Keep,
            ),
            State::AccountNotFound,
        )),
        refused(
            row(
                "the account does not select the namespace: AccountNotAllowed, no write",
                Path::Apply,
                Observation::NotAsked,
                Some("AccountNotAllowed"),
                &[],
                spread(drift),
                Failures::Keep,
            ),
            State::AccountNotAllowed,
        ),
        paused(refused(
            row(
                "paused and refused by the account: paused wins",
                Path::Apply,
                Observation::NotAsked,
                None,
                &[],
                Then::Idle,
                Failures::Keep,
            ),
            State::AccountNotFound,
        )),
        unrecorded(refused(
            row(
                "deleting an object its account always refused: released, nothing existed",
                Path::Cleanup,
                Observation::NotAsked,
                None,
                &[],
                Then::Release,
                Failures::Reset,
            ),
            State::AccountNotAllowed,
        )),
        refused(
            row(
                "deleting a recorded instance the account now refuses: waits, finalizer kept",
                Path::Cleanup,
                Observation::NotAsked,
                Some("AccountNotAllowed"),
                &[],
                pending(drift),
                Failures::Keep,
            ),
            State::AccountNotAllowed,
        ),
        retained(refused(
            row(
                "Retain while the account refuses: released without AWS",
                Path::Cleanup,
                Observation::NotAsked,
                None,
                &[],
                Then::Release,
                Failures::Keep,
            ),
            State::AccountNotFound,
        )),
        // ---- The attempt budget
        unrecorded(row(
            "the budget refused the create: AttemptBudgetExhausted, retried when the oldest expires",
            Path::Apply,
            Observation::BudgetRefused {
                used: 80,
                budget: 80,
                oldest_expires_at: rfc3339(NOW + 600),
            },
            Some("QuotaExceeded"),
            &[],
            Then::Requeue(secs(601), Jitter::None),
            Failures::Keep,
        )),
    ]
}

#[test]
fn create_sends_the_uid_token_and_tag_and_records_the_id_at_once() {
    let rows = table();
    let first_create = rows
        .iter()
        .find(|r| r.what.starts_with("no instance recorded, none found"))
        .unwrap_or_else(|| panic!("the table has the first-create row"));
    let create = decide_row(first_create);
    let Some(Write::CreateInstance(request)) = create.writes.first() else {
        panic!("expected CreateInstance, got {:?}", create.writes);
    };
    assert_eq!(request.client_token, token::create_token(UID));
    assert_eq!(request.tags.get(UID_TAG).map(String::as_str), Some(UID));
    assert_eq!(request.alias.as_deref(), Some("contact-center"));
    assert_eq!(
        create.status,
        ConnectInstanceStatus::default(),
        "nothing before it"
    );

    let created = decide_row(find(&rows, "CreateInstance answered"));
    assert_eq!(created.status.instance_id.as_deref(), Some(ID));
    assert_eq!(created.status.arn.as_deref(), Some(ARN));
    assert_eq!(
        created.status.instance_status.as_deref(),
        Some("CREATION_IN_PROGRESS")
    );
    assert_eq!(
        created.status.create_requested_time,
        rfc3339(NOW),
        "the start of the not-visible-yet grace"
    );
}

#[test]
fn messages_carry_the_aws_message_and_request_id() {
    let rows = table();
    let quota = find(&rows, "ServiceQuotaExceeded");
    let (_, message) = decide_row(quota).state.expect("a state");
    assert!(message.contains("the message AWS sent"), "{message}");
    assert!(message.contains("req-1"), "{message}");
    let delete = find(&rows, "errors on delete");
    let (_, message) = decide_row(delete).state.expect("a state");
    assert!(
        message.starts_with("Deleting the instance failed: "),
        "{message}"
    );
}

#[test]
fn adoption_records_the_id_announces_it_and_names_each_mismatch() {
    let rows = table();
    let adopt = decide_row(find(&rows, "adopting a matching, untagged"));
    assert_eq!(adopt.status.instance_id.as_deref(), Some(ID));
    assert_eq!(
        adopt.writes,
        vec![Write::Tag([(UID_TAG.to_owned(), UID.to_owned())].into())],
        "only the uid tag: everything else already matches"
    );
    assert!(adopt.events.iter().any(|e| e.reason == "Adopted"));

    let (_, message) = decide_row(find(&rows, "adopting an instance of another identity"))
        .state
        .expect("a state");
    assert!(
        message.contains("identityManagementType is CONNECT_MANAGED in AWS, SAML in the spec"),
        "{message}"
    );
    let (_, message) = decide_row(find(&rows, "adopting an instance with another alias"))
        .state
        .expect("a state");
    assert!(
        message
            .contains(r#"instanceAlias is "contact-center" in AWS, "another-center" in the spec"#),
        "{message}"
    );
    let (_, message) = decide_row(find(&rows, "adopting an instance another object owns"))
        .state
        .expect("a state");
    assert!(message.contains("someone-else"), "{message}");
}

#[test]
fn alias_conflict_says_how_to_adopt() {
    let rows = table();
    let (_, message) = decide_row(find(&rows, "an alias held by an instance without our tag"))
        .state
        .expect("a state");
    assert!(
        message.contains(&format!("spec.instanceId: {ID}")),
        "{message}"
    );
    assert!(message.contains("connect-operator import"), "{message}");
}
