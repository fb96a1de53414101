use serde_json::json;

use super::{group_id, pair_allowed, parse_distributions, parse_sign_in};

fn regions() -> [String; 2] {
    ["us-east-1".to_owned(), "us-west-2".to_owned()]
}

#[test]
fn documented_pairs_only_and_ap_northeast_one_way() {
    assert!(pair_allowed("us-east-1", "us-west-2"));
    assert!(pair_allowed("us-west-2", "us-east-1"));
    assert!(pair_allowed("eu-central-1", "eu-west-2"));
    assert!(pair_allowed("ap-northeast-1", "ap-northeast-3"));
    assert!(!pair_allowed("ap-northeast-3", "ap-northeast-1"));
    assert!(!pair_allowed("us-east-1", "eu-west-2"));
    assert!(!pair_allowed("us-east-1", "us-east-1"));
}

#[test]
fn group_ids_come_from_ids_and_arns() {
    let id = "0c1d2e3f-0000-4000-8000-000000000001";
    assert_eq!(group_id(id), id);
    assert_eq!(
        group_id(&format!(
            "arn:aws:connect:us-east-1:123456789012:traffic-distribution-group/{id}"
        )),
        id
    );
}

#[test]
fn distributions_must_be_integers_of_the_two_regions_adding_up_to_100() {
    let ok = json!({"Distributions": [{"Region": "us-east-1", "Percentage": 30}, {"Region": "us-west-2", "Percentage": 70}]});
    assert_eq!(
        parse_distributions("TelephonyConfig", &ok, &regions()).unwrap(),
        vec![("us-east-1".to_owned(), 30), ("us-west-2".to_owned(), 70)]
    );
    // A region left out gets 0.
    let one = json!({"Distributions": [{"Region": "us-west-2", "Percentage": 100}]});
    assert_eq!(
        parse_distributions("AgentConfig", &one, &regions()).unwrap()[0].1,
        0
    );
    for bad in [
        json!({"Distributions": [{"Region": "us-east-1", "Percentage": 50}]}),
        json!({"Distributions": [{"Region": "us-east-1", "Percentage": 50.5}, {"Region": "us-west-2", "Percentage": 49.5}]}),
        json!({"Distributions": [{"Region": "eu-west-2", "Percentage": 100}]}),
        json!({"Distributions": [{"Region": "us-east-1", "Percentage": 50}, {"Region": "us-east-1", "Percentage": 50}]}),
        json!({"Distributions": [{"Region": "us-east-1", "Percentage": 120}]}),
        json!({}),
    ] {
        let err = parse_distributions("TelephonyConfig", &bad, &regions()).unwrap_err();
        assert_eq!(err.kind.code(), "InvalidRequestException", "{bad}");
    }
}

#[test]
fn sign_in_keeps_regions_left_out_and_refuses_others() {
    let current = vec![
        ("us-east-1".to_owned(), true),
        ("us-west-2".to_owned(), true),
    ];
    let off = json!({"Distributions": [{"Region": "us-west-2", "Enabled": false}]});
    assert_eq!(
        parse_sign_in(&off, &regions(), &current).unwrap(),
        vec![
            ("us-east-1".to_owned(), true),
            ("us-west-2".to_owned(), false)
        ]
    );
    let other = json!({"Distributions": [{"Region": "eu-west-2", "Enabled": true}]});
    assert!(parse_sign_in(&other, &regions(), &current).is_err());
}
