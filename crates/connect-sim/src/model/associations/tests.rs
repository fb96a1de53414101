//! Tests of the associations: what the three sets of names share (conflicts, ClientToken
//! replay, removal) and where each keeps its own rules (messages, limits, validation, the
//! shape of its List answer).

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Value, json};

use super::super::testing::{new_model, request, settings};
use super::super::{Model, Reply, Settings};
use super::{AssociateRequest, BotRequest, LexV2Bot};
use crate::config::SimConfig;
use crate::errors::ApiError;

const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:";
const BOT_ALIAS: &str = "arn:aws:lex:us-east-1:123456789012:bot-alias/";

fn config() -> SimConfig {
    SimConfig {
        creation_delay: Duration::ZERO,
        ..SimConfig::default()
    }
}

/// A model with one ACTIVE instance, and its id.
fn active(config: &SimConfig) -> (Model, String) {
    let mut model = new_model(11);
    let id = model
        .create_instance(&settings(config), request("assoc", None), Instant::now())
        .ok()
        .and_then(|reply| reply.instance_id)
        .unwrap_or_default();
    (model, id)
}

fn origin(origin: &str, token: Option<&str>) -> AssociateRequest {
    AssociateRequest {
        origin: Some(origin.into()),
        client_token: token.map(str::to_owned),
        ..AssociateRequest::default()
    }
}

fn function(name: &str, token: Option<&str>) -> AssociateRequest {
    AssociateRequest {
        function_arn: Some(format!("{FUNCTION}{name}")),
        client_token: token.map(str::to_owned),
        ..AssociateRequest::default()
    }
}

fn bot(alias_arn: &str, token: Option<&str>) -> BotRequest {
    BotRequest {
        lex_bot: None,
        lex_v2_bot: Some(LexV2Bot {
            alias_arn: Some(alias_arn.into()),
        }),
        client_token: token.map(str::to_owned),
    }
}

/// The error code and message of a refused call.
fn refusal(result: Result<Reply, ApiError>) -> (&'static str, String) {
    match result {
        Ok(reply) => ("accepted", format!("{:?}", reply.body)),
        Err(error) => (error.kind.code(), error.message),
    }
}

fn body(result: Result<Reply, ApiError>) -> Value {
    result.ok().and_then(|reply| reply.body).unwrap_or_default()
}

#[test]
fn the_name_sets_refuse_duplicates_replay_tokens_and_remove_with_their_own_words() {
    let config = config();
    let settings = settings(&config);
    let (mut model, id) = active(&config);
    let origin_name = "https://a.example.com";
    let function_arn = format!("{FUNCTION}one");
    let alias_arn = format!("{BOT_ALIAS}A/B");

    assert!(
        model
            .associate_approved_origin(&settings, &id, origin(origin_name, Some("o")))
            .is_ok()
    );
    assert!(
        model
            .associate_lambda_function(&settings, &id, function("one", Some("f")))
            .is_ok()
    );
    assert!(
        model
            .associate_bot(&settings, &id, bot(&alias_arn, Some("b")))
            .is_ok()
    );

    // The same token and request again: the first answer, nothing new.
    let replay = model.associate_approved_origin(&settings, &id, origin(origin_name, Some("o")));
    assert!(replay.is_ok_and(|reply| reply.replay));
    let replay = model.associate_bot(&settings, &id, bot(&alias_arn, Some("b")));
    assert!(replay.is_ok_and(|reply| reply.replay));
    // The same token for something else.
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, function("two", Some("f")))),
        (
            "InvalidRequestException",
            "ClientToken f was already used for a AssociateLambdaFunction request with different parameters.".into()
        )
    );

    // Without a token a second association conflicts.
    assert_eq!(
        refusal(model.associate_approved_origin(&settings, &id, origin(origin_name, None))),
        (
            "ResourceConflictException",
            format!("The origin {origin_name} is already approved for instance {id}.")
        )
    );
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, function("one", None))),
        (
            "ResourceConflictException",
            format!("The function {function_arn} is already associated with instance {id}.")
        )
    );
    assert_eq!(
        refusal(model.associate_bot(&settings, &id, bot(&alias_arn, None))),
        (
            "ResourceConflictException",
            format!("The bot alias {alias_arn} is already associated with instance {id}.")
        )
    );

    // Removal, then nothing to remove.
    assert!(
        model
            .disassociate_approved_origin(&id, Some(origin_name), None)
            .is_ok()
    );
    assert!(
        model
            .disassociate_lambda_function(&id, Some(&function_arn), None)
            .is_ok()
    );
    assert!(model.disassociate_bot(&id, bot(&alias_arn, None)).is_ok());
    assert_eq!(
        refusal(model.disassociate_approved_origin(&id, Some(origin_name), None)),
        (
            "ResourceNotFoundException",
            format!("The origin {origin_name} is not approved for instance {id}.")
        )
    );
    assert_eq!(
        refusal(model.disassociate_lambda_function(&id, Some(&function_arn), None)),
        (
            "ResourceNotFoundException",
            format!("The function {function_arn} is not associated with instance {id}.")
        )
    );
    assert_eq!(
        refusal(model.disassociate_bot(&id, bot(&alias_arn, None))),
        (
            "ResourceNotFoundException",
            format!("The bot alias {alias_arn} is not associated with instance {id}.")
        )
    );
}

#[test]
fn functions_and_bots_have_limits_and_must_exist_origins_neither() {
    let config = config();
    let missing = Regex::new("missing").ok();
    let settings = Settings {
        missing_resource: missing.as_ref(),
        ..settings(&config)
    };
    let (mut model, id) = active(&config);
    for n in 0..60 {
        let origin = origin(&format!("https://o{n}.example.com"), None);
        assert!(
            model
                .associate_approved_origin(&settings, &id, origin)
                .is_ok()
        );
    }
    assert!(
        model
            .associate_approved_origin(
                &settings,
                &id,
                self::origin("https://missing.example", None)
            )
            .is_ok(),
        "an origin is no resource"
    );
    for n in 0..50 {
        let function = function(&format!("f{n}"), None);
        assert!(
            model
                .associate_lambda_function(&settings, &id, function)
                .is_ok()
        );
    }
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, function("f50", None))),
        (
            "ServiceQuotaExceededException",
            format!("The instance {id} already has the maximum of 50 Lambda functions.")
        )
    );
    for n in 0..100 {
        let bot = bot(&format!("{BOT_ALIAS}B{n}/x"), None);
        assert!(model.associate_bot(&settings, &id, bot).is_ok());
    }
    assert_eq!(
        refusal(model.associate_bot(&settings, &id, bot(&format!("{BOT_ALIAS}B100/x"), None))),
        (
            "ServiceQuotaExceededException",
            format!("The instance {id} already has the maximum of 100 Amazon Lex V2 bots.")
        )
    );
    let (mut model, id) = active(&config);
    let missing_function = format!("{FUNCTION}missing");
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, function("missing", None))),
        (
            "ResourceNotFoundException",
            format!(
                "The resource {missing_function} does not exist or cannot be reached by Amazon Connect."
            )
        )
    );
    let missing_bot = format!("{BOT_ALIAS}missing/x");
    assert_eq!(
        refusal(model.associate_bot(&settings, &id, bot(&missing_bot, None))).0,
        "ResourceNotFoundException"
    );
}

#[test]
fn each_operation_validates_its_own_request_after_the_instance() {
    let config = config();
    let settings = settings(&config);
    let (mut model, id) = active(&config);
    assert_eq!(
        refusal(model.associate_approved_origin(&settings, &id, origin("ftp://a", None))),
        (
            "InvalidParameterException",
            "The origin 'ftp://a' is not valid: expected http(s)://host[:port].".into()
        )
    );
    let short = AssociateRequest {
        function_arn: Some("arn:aws:lambda:us-east-1:1234:function:f".into()),
        ..AssociateRequest::default()
    };
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, short)),
        (
            "InvalidParameterException",
            "The FunctionArn 'arn:aws:lambda:us-east-1:1234:function:f' is not a valid lambda function ARN.".into()
        )
    );
    assert_eq!(
        refusal(model.associate_bot(&settings, &id, bot("arn:aws:lex:us-east-1:123456789012:bot/A", None))),
        (
            "InvalidParameterException",
            "The AliasArn 'arn:aws:lex:us-east-1:123456789012:bot/A' is not a valid lex bot-alias ARN.".into()
        )
    );
    assert_eq!(
        refusal(model.associate_lambda_function(&settings, &id, AssociateRequest::default())),
        (
            "InvalidParameterException",
            "1 validation error detected: Value null at 'functionArn' failed to satisfy constraint: Member must not be null".into()
        )
    );
    let v1 = BotRequest {
        lex_bot: Some(json!({ "Name": "old" })),
        ..BotRequest::default()
    };
    assert_eq!(
        refusal(model.associate_bot(&settings, &id, v1)).0,
        "InvalidRequestException"
    );
    // Disassociating a function checks no format (what is not an ARN is not associated); a
    // bot's alias ARN is checked both ways.
    assert_eq!(
        refusal(model.disassociate_lambda_function(&id, Some("not an arn"), None)).0,
        "ResourceNotFoundException"
    );
    assert_eq!(
        refusal(model.disassociate_bot(&id, bot("not an arn", None))).0,
        "InvalidParameterException"
    );

    // An instance that is not ACTIVE is refused before the request is looked at.
    let slow = SimConfig::default();
    let slow_id = model
        .create_instance(
            &self::settings(&slow),
            request("slow", None),
            Instant::now(),
        )
        .ok()
        .and_then(|reply| reply.instance_id)
        .unwrap_or_default();
    assert_eq!(
        refusal(model.associate_approved_origin(&settings, &slow_id, origin("ftp://a", None))),
        (
            "InvalidRequestException",
            format!(
                "Instance {slow_id} is not ACTIVE (CREATION_IN_PROGRESS); its configuration cannot be read or changed."
            )
        )
    );
}

#[test]
fn lists_page_in_each_sets_own_shape_and_v1_bots_are_none() {
    let config = config();
    let settings = settings(&config);
    let (mut model, id) = active(&config);
    for n in 0..26 {
        let origin = origin(&format!("https://o{n}.example.com"), None);
        assert!(
            model
                .associate_approved_origin(&settings, &id, origin)
                .is_ok()
        );
        let function = function(&format!("f{n}"), None);
        assert!(
            model
                .associate_lambda_function(&settings, &id, function)
                .is_ok()
        );
    }
    let alias_arn = format!("{BOT_ALIAS}A/B");
    assert!(
        model
            .associate_bot(&settings, &id, bot(&alias_arn, None))
            .is_ok()
    );

    let origins = body(model.list_approved_origins(&id, None, None));
    assert_eq!(origins["Origins"].as_array().map(Vec::len), Some(25));
    assert_eq!(origins["Origins"][0], "https://o0.example.com");
    assert_eq!(origins["NextToken"], "sim-origins-0000000000000019");
    let rest = body(model.list_approved_origins(&id, None, Some("sim-origins-0000000000000019")));
    assert_eq!(rest, json!({ "Origins": ["https://o25.example.com"] }));
    assert_eq!(
        refusal(model.list_lambda_functions(&id, None, Some("sim-origins-0000000000000019"))).0,
        "InvalidParameterException",
        "a token of another list"
    );
    let functions = body(model.list_lambda_functions(&id, Some("2"), None));
    assert_eq!(
        functions,
        json!({
            "LambdaFunctions": [format!("{FUNCTION}f0"), format!("{FUNCTION}f1")],
            "NextToken": "sim-functions-0000000000000002",
        })
    );

    assert_eq!(
        body(model.list_bots(&id, Some("V2"), None, None)),
        json!({ "LexBots": [{ "LexV2Bot": { "AliasArn": alias_arn } }] })
    );
    assert_eq!(
        body(model.list_bots(&id, Some("V1"), None, None)),
        json!({ "LexBots": [] })
    );
    assert_eq!(
        refusal(model.list_bots(&id, None, None, None)),
        (
            "InvalidParameterException",
            "1 validation error detected: Value 'null' at 'lexVersion' failed to satisfy constraint: \
             Member must satisfy enum value set: [V1, V2]"
                .into()
        )
    );
}
