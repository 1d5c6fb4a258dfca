//! Property tests against one running service: any body gets a 2xx or a 4xx with the error
//! shape, never a 5xx; a ranking is the candidates sorted by score, ties in input order.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::harness::{Fixture, Service, Variant, client, score};

/// One service for every case: a runtime of its own (the cases are synchronous), the registry
/// it reads and the address it answers on.
struct Shared {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    client: reqwest::Client,
    _fixture: Fixture,
    _service: Service,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (fixture, service) = rt.block_on(async {
            let fx = Fixture::new().await;
            let v1 = fx.register(Variant::A).await;
            fx.promote(v1.version).await;
            let svc = fx
                .start_with(|o| {
                    o.max_candidates = 50;
                    o.max_body_bytes = 16 * 1024;
                })
                .await;
            svc.wait_for_version(v1.version).await;
            (fx, svc)
        });
        Shared {
            addr: service.addr,
            client: rt.block_on(async { client() }),
            rt,
            _fixture: fixture,
            _service: service,
        }
    })
}

/// Posts `body` to `/v1/rank`: status and body (JSON, or the text as a string).
fn post(body: Vec<u8>) -> (u16, Value) {
    let s = shared();
    s.rt.block_on(async {
        let r = s
            .client
            .post(format!("http://{}/v1/rank", s.addr))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("query".to_owned()),
        Just("candidates".to_owned()),
        Just("book_id".to_owned()),
        Just("bm25".to_owned()),
        Just("top_k".to_owned()),
        Just("user_id".to_owned()),
        Just("device".to_owned()),
        Just("request_id".to_owned()),
        "[a-z_]{1,8}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-50.0f64..50.0).prop_map(Value::from),
        Just(json!(0)),
        Just(json!(-1)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![Just("bk_1"), Just("usr_1"), Just("mobile"), Just("ev_0")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value that is usually of the right type for its field, sometimes anything.
fn mostly(good: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.9,
        prop_oneof![8 => good.boxed(), 1 => json_value().boxed()],
    )
}

fn candidate() -> impl Strategy<Value = Value> {
    (
        mostly(
            prop_oneof![Just("bk_3"), Just("ev_1"), Just("nope"), Just("")].prop_map(Value::from),
        ),
        mostly(number()),
        prop::option::of((key(), json_value())),
    )
        .prop_map(|(book_id, bm25, extra)| {
            let mut m = Map::new();
            if let Some(b) = book_id {
                m.insert("book_id".into(), b);
            }
            if let Some(s) = bm25 {
                m.insert("bm25".into(), s);
            }
            if let Some((k, v)) = extra {
                m.entry(k).or_insert(v);
            }
            Value::Object(m)
        })
}

/// Bodies shaped like the contract's, each field present or not, of the right type or not.
fn near_valid() -> impl Strategy<Value = Value> {
    (
        mostly(".{0,20}".prop_map(Value::from)),
        mostly(prop::collection::vec(candidate(), 0..60).prop_map(Value::Array)),
        mostly(number()),
        mostly(prop_oneof![Just("usr_1"), Just("usr_x")].prop_map(Value::from)),
        mostly(prop_oneof![Just("mobile"), Just("desktop"), Just("vr")].prop_map(Value::from)),
        mostly(".{0,8}".prop_map(Value::from)),
    )
        .prop_map(|(query, candidates, top_k, user, device, id)| {
            let mut m = Map::new();
            for (k, v) in [
                ("query", query),
                ("candidates", candidates),
                ("top_k", top_k),
                ("user_id", user),
                ("device", device),
                ("request_id", id),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

/// Any body: JSON of any shape, near-valid JSON, its truncations, random bytes, oversized.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        6 => near_valid().prop_map(|v| v.to_string().into_bytes()),
        2 => (near_valid(), any::<prop::sample::Index>()).prop_map(|(v, at)| {
            let s = v.to_string().into_bytes();
            s[..at.index(s.len() + 1)].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => (0usize..3).prop_map(|pad| {
            json!({"query": "x".repeat(20_000 + pad), "candidates": [{"book_id": "b", "bm25": 1}]})
                .to_string()
                .into_bytes()
        }),
    ]
}

/// A 200's `ranked` is a subset of the candidates sorted by score; ties keep input order.
fn check_ranking(req: &Value, body: &Value) -> Result<(), TestCaseError> {
    let candidates = req["candidates"].as_array().unwrap();
    let ranked = body["ranked"].as_array().unwrap();
    // Input positions of the ranked books, taking duplicates of one id in order of appearance.
    let mut taken = BTreeSet::new();
    let mut prev: Option<(f32, usize)> = None;
    for r in ranked {
        let s = score(&r["score"]);
        let i = (0..candidates.len())
            .find(|i| !taken.contains(i) && candidates[*i]["book_id"] == r["book_id"])
            .ok_or_else(|| TestCaseError::fail(format!("{r} is not a candidate left")))?;
        taken.insert(i);
        if let Some((ps, pi)) = prev {
            prop_assert!(ps >= s, "scores not descending: {ps} then {s}");
            // A ranked id held by several candidates is matched to the first one left, which
            // need not be the one the service ranked there (their scores can differ): the
            // input order of a tie is checked only between ids that appear once.
            let once = |at: usize| {
                candidates
                    .iter()
                    .filter(|c| c["book_id"] == candidates[at]["book_id"])
                    .count()
                    == 1
            };
            if ps == s && once(pi) && once(i) {
                prop_assert!(pi < i, "tie out of input order: {pi} before {i}");
            }
        }
        prev = Some((s, i));
    }
    let n = candidates.len();
    let k = req["top_k"].as_u64().map_or(n, |k| (k as usize).min(n));
    prop_assert_eq!(ranked.len(), k);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_body_gets_a_2xx_or_a_4xx_with_the_error_shape(body in any_body()) {
        let (status, answer) = post(body.clone());
        prop_assert!(status == 200 || status == 400 || status == 413, "{status}: {answer}");
        if status == 200 {
            let req: Value = serde_json::from_slice(&body).unwrap();
            check_ranking(&req, &answer)?;
        } else {
            let code = answer["error"]["code"].as_str().unwrap_or_default();
            prop_assert!(!code.is_empty(), "{answer}");
            prop_assert!(answer["error"]["message"].is_string(), "{answer}");
        }
    }
}

fn valid_request() -> impl Strategy<Value = Value> {
    let ids: Vec<String> = (0..40)
        .map(|b| format!("bk_{b}"))
        .chain(["ev_0", "ev_1", "x_1", "x_2", "x_3"].map(String::from))
        .collect();
    (
        prop::sample::subsequence(ids, 1..45).prop_shuffle(),
        prop::collection::vec(prop_oneof![Just(1.0f64), Just(5.5), 0.0f64..30.0], 45),
        prop::option::of(1usize..60),
        prop::option::of(prop_oneof![Just("usr_1"), Just("usr_4"), Just("usr_404")]),
        "[a-z ]{0,15}",
    )
        .prop_map(|(books, bm25, top_k, user, query)| {
            let mut v = json!({
                "query": query,
                "device": "mobile",
                "candidates": books.iter().zip(&bm25)
                    .map(|(b, s)| json!({"book_id": b, "bm25": s}))
                    .collect::<Vec<_>>(),
            });
            if let Some(u) = user {
                v["user_id"] = json!(u);
            }
            if let Some(k) = top_k {
                v["top_k"] = json!(k);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn a_ranking_is_the_candidates_sorted_by_score(req in valid_request()) {
        let mut full = req.clone();
        full.as_object_mut().unwrap().remove("top_k");
        let (status, all) = post(full.to_string().into_bytes());
        prop_assert_eq!(status, 200, "{}", all);
        check_ranking(&full, &all)?;
        // Without top_k: every candidate exactly once.
        prop_assert_eq!(all["ranked"].as_array().unwrap().len(), full["candidates"].as_array().unwrap().len());
        // With top_k: the first k of the same ranking.
        let (status, top) = post(req.to_string().into_bytes());
        prop_assert_eq!(status, 200, "{}", top);
        let k = top["ranked"].as_array().unwrap().len();
        prop_assert_eq!(&top["ranked"].as_array().unwrap()[..], &all["ranked"].as_array().unwrap()[..k]);
        check_ranking(&req, &top)?;
    }
}
