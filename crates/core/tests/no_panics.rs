//! Whatever a stream record holds, decoding it is a typed change or an `InvalidRecord`, never a
//! panic: arbitrary JSON in the shape of a record, arbitrary attribute values in its keys and
//! images, and arbitrary numbers where times and sizes go.

use aws_lambda_events::event::dynamodb::EventRecord;
use proptest::prelude::*;
use serde_json::{Value, json};
use users_core::ChangeEvent;

const ID: &str = "4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e";

/// A number as JSON: small, huge, negative, fractional, or not finite once parsed.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(1_700_000_000)),
        Just(json!(1e300)),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::hash_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A DynamoDB attribute value as a stream image holds it, well-formed or not.
fn attribute_value() -> impl Strategy<Value = Value> {
    let number_text = prop_oneof![
        "-?[0-9]{1,40}(\\.[0-9]{1,10})?".boxed(),
        "\\PC{0,12}".boxed(),
        Just("1e999999".to_owned()).boxed(),
    ];
    let leaf = prop_oneof![
        "\\PC{0,40}".prop_map(|s| json!({"S": s})),
        Just(json!({"S": ID})),
        Just(json!({"S": "test@test.com"})),
        number_text.prop_map(|n| json!({"N": n})),
        any::<bool>().prop_map(|b| json!({"BOOL": b})),
        Just(json!({"NULL": true})),
        "[A-Za-z0-9+/=]{0,16}".prop_map(|b| json!({"B": b})),
        proptest::collection::vec("\\PC{0,8}", 0..4).prop_map(|ss| json!({"SS": ss})),
        any_json(),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|l| json!({"L": l})),
            proptest::collection::hash_map("[a-z]{1,9}", inner, 0..4).prop_map(|m| json!({"M": m})),
        ]
    })
}

/// An image: a map of attribute names to values, usually with the user's own names.
fn image() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("id".to_owned()),
        Just("email".to_owned()),
        Just("timestamp".to_owned()),
        "\\PC{0,8}"
    ];
    proptest::collection::hash_map(names, attribute_value(), 0..5)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn record() -> impl Strategy<Value = Value> {
    let event_name = prop_oneof![
        Just("INSERT".to_owned()),
        Just("MODIFY".to_owned()),
        Just("REMOVE".to_owned()),
        "\\PC{0,10}"
    ];
    (
        event_name,
        image(),
        proptest::option::of(image()),
        proptest::option::of(image()),
        number(),
        number(),
        proptest::option::of("[0-9]{0,40}"),
    )
        .prop_map(|(name, keys, old, new, created, size, sequence)| {
            let mut dynamodb = json!({
                "ApproximateCreationDateTime": created,
                "Keys": keys,
                "SizeBytes": size,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            });
            if let Some(sequence) = sequence {
                dynamodb["SequenceNumber"] = json!(sequence);
            }
            if let Some(old) = old {
                dynamodb["OldImage"] = old;
            }
            if let Some(new) = new {
                dynamodb["NewImage"] = new;
            }
            json!({
                "eventID": "1", "eventName": name, "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_record_decodes_or_is_rejected(record in record()) {
        // As the stream function does it: first Lambda's record type, then the user change.
        if let Ok(record) = serde_json::from_value::<EventRecord>(record) {
            let _ = ChangeEvent::decode(&record);
        }
    }

    #[test]
    fn any_json_in_place_of_a_record_is_rejected_cleanly(value in any_json()) {
        if let Ok(record) = serde_json::from_value::<EventRecord>(value) {
            let _ = ChangeEvent::decode(&record);
        }
    }
}
