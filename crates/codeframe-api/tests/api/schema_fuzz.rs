//! A property-based tester driven by the OpenAPI document alone (in the manner of Schemathesis):
//! for each operation, proptest draws requests the document says are valid — path, query and
//! header parameters and bodies generated from their schemas, limits and patterns included —
//! sends them to the real server, and checks each answer:
//! - its status is one the operation documents, and never a 5xx;
//! - it is never a refusal of the input (400, 413, 415, 422): the request was valid;
//! - its body matches the schema the document gives for that status (an unknown field counts).
//!
//! The server starts with some state to reach (a project with an agent, context items and a
//! checkpoint; another user's project), and requests run in a random order over one home, so
//! pauses, resumes, restores and deletions meet each other's results.

#![allow(clippy::print_stderr)] // FUZZ_TRACE=1 and the statuses seen are printed for a person reading a failure.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;

/// Values known to reach something, by parameter name: drawn often, so that requests get past
/// "not found" and into the routes' logic (any other value of the schema is drawn too).
#[derive(Clone, Default)]
struct Hints {
    /// Pools the test refreshes as the server's state changes (checkpoints made and deleted,
    /// permits taken and released): a value is picked from the pool as it is when drawn.
    integers: BTreeMap<&'static str, Pool>,
    strings: BTreeMap<&'static str, Vec<String>>,
    /// Integers drawn from their pool only (`token_id`: any other small id could be the
    /// tester's own token, and revoking it would lock the tester out).
    pool_only: Vec<&'static str>,
    /// Booleans drawn `true` three times in four (a `force` that gets past a refusal).
    mostly_true: Vec<&'static str>,
    directories: Vec<String>,
}

type Pool = Arc<std::sync::Mutex<Vec<i64>>>;

fn pool(values: Vec<i64>) -> Pool {
    Arc::new(std::sync::Mutex::new(values))
}

fn refill(pool: &Pool, values: Vec<i64>) {
    *pool.lock().unwrap() = values;
}

/// One request, drawn from an operation's schema.
#[derive(Debug, Clone)]
struct Drawn {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

struct Doc<'a> {
    root: &'a Value,
}

impl<'a> Doc<'a> {
    /// Follows `$ref`s to the schema itself.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix("#/components/schemas/").expect("a local schema ref");
            schema = &self.root["components"]["schemas"][name];
            assert!(!schema.is_null(), "dangling $ref {r}");
        }
        schema
    }

    fn types(schema: &Value) -> Vec<&str> {
        match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Values of `schema` (named `name` where it is a parameter or property).
    fn strategy(&self, schema: &'a Value, name: &str, hints: &Hints, depth: u32) -> BoxedStrategy<Value> {
        let schema = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = schema[key].as_array() {
                // `null` (where it is one choice) drawn less often than a value.
                let alts: Vec<(u32, BoxedStrategy<Value>)> = alts
                    .iter()
                    .map(|a| {
                        let weight = if self.resolve(a)["type"] == "null" { 1 } else { 3 };
                        (weight, self.strategy(a, name, hints, depth + 1))
                    })
                    .collect();
                return proptest::strategy::Union::new_weighted(alts).boxed();
            }
        }
        if let Some(parts) = schema["allOf"].as_array() {
            let parts: Vec<BoxedStrategy<Value>> =
                parts.iter().map(|p| self.strategy(p, name, hints, depth + 1)).collect();
            return parts
                .prop_map(|vs| {
                    let mut merged = serde_json::Map::new();
                    for v in vs {
                        if let Value::Object(o) = v {
                            merged.extend(o);
                        }
                    }
                    Value::Object(merged)
                })
                .boxed();
        }
        if let Some(values) = schema["enum"].as_array() {
            return proptest::sample::select(values.clone()).boxed();
        }
        let types = Self::types(schema);
        let mut alts: Vec<BoxedStrategy<Value>> = Vec::new();
        for t in &types {
            alts.push(match *t {
                "null" => Just(Value::Null).boxed(),
                "boolean" if hints.mostly_true.contains(&name) => {
                    proptest::bool::weighted(0.75).prop_map(Value::from).boxed()
                }
                "boolean" => any::<bool>().prop_map(Value::from).boxed(),
                "integer" => self.integer(schema, name, hints),
                "string" => self.string(schema, name, hints),
                "array" => {
                    let items = self.strategy(&schema["items"], name, hints, depth + 1);
                    let max = if depth > 2 { 1 } else { 4 };
                    proptest::collection::vec(items, 0..=max).prop_map(Value::Array).boxed()
                }
                "object" => self.object(schema, hints, depth),
                other => panic!("a schema type the tester does not know: {other}"),
            });
        }
        if types.is_empty() && schema.get("properties").is_some() {
            alts.push(self.object(schema, hints, depth));
        }
        assert!(!alts.is_empty(), "cannot draw values of {name}: {schema}");
        proptest::strategy::Union::new(alts).boxed()
    }

    fn integer(&self, schema: &Value, name: &str, hints: &Hints) -> BoxedStrategy<Value> {
        // `format` bounds an integer as much as `minimum` and `maximum` do (int32 is signed).
        let (lo, hi) = match schema["format"].as_str() {
            Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
            Some("uint32") => (0, i64::from(u32::MAX)),
            Some("int8") => (i64::from(i8::MIN), i64::from(i8::MAX)),
            Some("uint8") => (0, i64::from(u8::MAX)),
            Some("int16") => (i64::from(i16::MIN), i64::from(i16::MAX)),
            Some("uint16") => (0, i64::from(u16::MAX)),
            _ => (i64::MIN, i64::MAX),
        };
        let min = schema["minimum"].as_i64().unwrap_or(lo).max(lo);
        let max = schema["maximum"].as_i64().unwrap_or(hi).min(hi);
        let mut alts: Vec<(u32, BoxedStrategy<Value>)> = vec![
            (1, (min..=max).prop_map(Value::from).boxed()),
            (1, (min.max(-2)..=max.min(60)).prop_map(Value::from).boxed()),
        ];
        if hints.pool_only.contains(&name) {
            alts.clear();
        }
        if let Some(known) = hints.integers.get(name) {
            let known = Arc::clone(known);
            let fallback = min.max(0).min(max);
            let picked = any::<proptest::sample::Index>().prop_map(move |ix| {
                let values = known.lock().unwrap();
                let v = if values.is_empty() { fallback } else { values[ix.index(values.len())] };
                Value::from(v.clamp(min, max))
            });
            alts.push((10, picked.boxed()));
        }
        proptest::strategy::Union::new_weighted(alts).boxed()
    }

    fn string(&self, schema: &Value, name: &str, hints: &Hints) -> BoxedStrategy<Value> {
        let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
        let max = schema["maxLength"].as_u64().map_or(usize::MAX, |m| m as usize);
        let format = schema["format"].as_str();
        if format == Some("directory") {
            return proptest::sample::select(hints.directories.clone()).prop_map(Value::from).boxed();
        }
        let drawn: BoxedStrategy<String> = if format == Some("date-time") {
            // Any instant from 1970 to 2100, in the forms RFC 3339 allows.
            (0i64..4_102_444_800, 0u32..1_000_000_000, -1080i32..=1080, any::<bool>())
                .prop_map(|(secs, nanos, offset_min, zulu)| {
                    let utc = time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
                        + time::Duration::nanoseconds(i64::from(nanos));
                    let at = if zulu {
                        utc
                    } else {
                        utc.to_offset(time::UtcOffset::from_whole_seconds(offset_min * 60).unwrap())
                    };
                    at.format(&time::format_description::well_known::Rfc3339).unwrap()
                })
                .boxed()
        } else if let Some(pattern) = schema["pattern"].as_str() {
            // Anchors are implied: the patterns given are whole-value patterns.
            let inner = pattern.trim_start_matches('^').trim_end_matches('$');
            proptest::string::string_regex(inner).expect("a pattern the tester can draw from").boxed()
        } else {
            // Any text but NUL, which the document's description excludes from every string.
            proptest::string::string_regex(r"[^\x00]{0,40}").unwrap().boxed()
        };
        let drawn = drawn
            .prop_filter("length within the schema's limits, no NUL (the document's rule)", move |s| {
                (min..=max).contains(&s.chars().count()) && !s.contains('\0')
            })
            .prop_map(Value::from)
            .boxed();
        match hints.strings.get(name) {
            Some(known) => proptest::strategy::Union::new_weighted(vec![
                (1, drawn),
                (3, proptest::sample::select(known.clone()).prop_map(Value::from).boxed()),
            ])
            .boxed(),
            None => drawn,
        }
    }

    fn object(&self, schema: &'a Value, hints: &Hints, depth: u32) -> BoxedStrategy<Value> {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
        if let Some(props) = schema["properties"].as_object() {
            for (key, prop) in props {
                let key = key.clone();
                let value = self.strategy(prop, &key, hints, depth + 1);
                fields.push(if required.contains(&key.as_str()) {
                    value.prop_map(move |v| Some((key.clone(), v))).boxed()
                } else {
                    proptest::option::weighted(0.75, value.prop_map(move |v| (key.clone(), v))).boxed()
                });
            }
        }
        fields.prop_map(|fs| Value::Object(fs.into_iter().flatten().collect())).boxed()
    }

    /// Requests of one operation.
    fn requests(&self, method: &str, path: &'a str, op: &'a Value, hints: &Hints) -> BoxedStrategy<Drawn> {
        let params: Vec<&Value> = op["parameters"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
        let mut drawn_params: Vec<BoxedStrategy<Option<(String, String, Value)>>> = Vec::new();
        for p in params {
            let name = p["name"].as_str().unwrap().to_owned();
            let place = p["in"].as_str().unwrap().to_owned();
            let value = self.strategy(&p["schema"], &name, hints, 0);
            let required = p["required"].as_bool().unwrap_or(false);
            let entry = value.prop_map(move |v| (place.clone(), name.clone(), v));
            drawn_params.push(if required {
                entry.prop_map(Some).boxed()
            } else {
                proptest::option::of(entry).boxed()
            });
        }
        let body: BoxedStrategy<Option<Value>> = match op.get("requestBody") {
            None => Just(None).boxed(),
            Some(rb) => {
                let schema = &rb["content"]["application/json"]["schema"];
                let value = self.strategy(schema, "body", hints, 0);
                if rb["required"].as_bool().unwrap_or(false) {
                    value.prop_map(Some).boxed()
                } else {
                    proptest::option::weighted(0.8, value).boxed()
                }
            }
        };
        let method = method.to_uppercase();
        let path = path.to_owned();
        (drawn_params, body)
            .prop_map(move |(params, body)| {
                let mut drawn = Drawn {
                    method: method.clone(),
                    path: path.clone(),
                    query: vec![],
                    headers: vec![],
                    body,
                };
                for (place, name, value) in params.into_iter().flatten() {
                    // A parameter cannot be sent as null: null means "not given".
                    if value.is_null() {
                        continue;
                    }
                    let text = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    match place.as_str() {
                        "path" => drawn.path = drawn.path.replace(&format!("{{{name}}}"), &text),
                        "query" => drawn.query.push((name, text)),
                        "header" => drawn.headers.push((name, text)),
                        other => panic!("a parameter place the tester does not know: {other}"),
                    }
                }
                drawn
            })
            .boxed()
    }

    /// Whether `value` matches `schema`; the first mismatch otherwise. An object may hold no
    /// field its schema does not name.
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        self.check_with(schema, value, at, true)
    }

    /// The fields an object of `schema` may have (through `allOf`, `oneOf` and `anyOf`).
    fn known_fields(&self, schema: &Value, known: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(props) = schema["properties"].as_object() {
            known.extend(props.keys().cloned());
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for part in schema[key].as_array().into_iter().flatten() {
                self.known_fields(part, known);
            }
        }
    }

    /// [`Doc::check`]; `strict` off inside an `allOf`, whose parts each name some fields only.
    fn check_with(&self, schema: &Value, value: &Value, at: &str, strict: bool) -> Result<(), String> {
        let schema = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = schema[key].as_array() {
                let errors: Vec<String> =
                    alts.iter().filter_map(|a| self.check_with(a, value, at, strict).err()).collect();
                return if errors.len() < alts.len() {
                    Ok(())
                } else {
                    Err(format!("{at}: matches none of {key}: {}", errors.join(" | ")))
                };
            }
        }
        if let Some(parts) = schema["allOf"].as_array() {
            for p in parts {
                self.check_with(p, value, at, false)?;
            }
        }
        if let (true, Value::Object(o)) = (strict, value) {
            let mut known = Vec::new();
            self.known_fields(schema, &mut known);
            // No field named at all: a free-form object.
            if let Some(extra) = o.keys().find(|k| !known.is_empty() && !known.contains(k)) {
                return Err(format!("{at}: field {extra:?} is not in the schema"));
            }
        }
        if let Some(values) = schema["enum"].as_array()
            && !values.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
        let types = Self::types(schema);
        if !types.is_empty() {
            let ok = types.iter().any(|t| match *t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "string" => value.is_string(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => false,
            });
            if !ok {
                return Err(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        match value {
            Value::Object(o) => {
                for r in schema["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap();
                    if !o.contains_key(r) {
                        return Err(format!("{at}: required field {r:?} is missing"));
                    }
                }
                if let Some(props) = schema["properties"].as_object() {
                    for (k, v) in o {
                        if let Some(p) = props.get(k) {
                            self.check(p, v, &format!("{at}.{k}"))?;
                        }
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{i}]"))?;
                }
            }
            Value::Number(n) => {
                if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), n.as_f64())
                    && v < min
                {
                    return Err(format!("{at}: {v} < minimum {min}"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Statuses that refuse the input itself: a valid request must never get one.
const INPUT_REFUSALS: [u16; 4] = [400, 413, 415, 422];

async fn send(srv: &Srv, token: &str, d: &Drawn) -> (StatusCode, String, Value) {
    let mut req =
        srv.http.request(d.method.parse().unwrap(), format!("{}{}", srv.base, d.path)).bearer_auth(token);
    if !d.query.is_empty() {
        req = req.query(&d.query);
    }
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &d.body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let content_type =
        res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, content_type, body)
}

/// Sends one drawn request and checks the answer against the operation's documented responses.
fn exercise(
    rt: &tokio::runtime::Runtime,
    srv: &Srv,
    token: &str,
    doc: &Doc<'_>,
    op: &Value,
    d: &Drawn,
    seen: &RefCell<BTreeMap<String, BTreeMap<u16, u32>>>,
) -> Result<(), TestCaseError> {
    let (status, content_type, body) = rt.block_on(send(srv, token, d));
    let code = status.as_u16();
    let op_id = op["operationId"].as_str().unwrap_or("?");
    *seen.borrow_mut().entry(op_id.to_owned()).or_default().entry(code).or_default() += 1;
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!(
            "{op_id} {} {} {:?} -> {code} {}",
            d.method,
            d.path,
            d.body,
            body.to_string().chars().take(200).collect::<String>()
        );
    }
    let context = || {
        format!(
            "{} {} query {:?} headers {:?} body {:?}\n→ {code} {body}",
            d.method, d.path, d.query, d.headers, d.body
        )
    };
    prop_assert!(code < 500, "a server error for a valid request: {}", context());
    prop_assert!(!INPUT_REFUSALS.contains(&code), "a valid request refused as invalid: {}", context());
    let documented = &op["responses"][code.to_string()];
    prop_assert!(!documented.is_null(), "status {code} is not documented for {op_id}: {}", context());
    match documented["content"]["application/json"].get("schema") {
        Some(schema) => {
            prop_assert!(content_type.starts_with("application/json"), "not JSON: {}", context());
            if let Err(e) = doc.check(schema, &body, "body") {
                return Err(TestCaseError::fail(format!("{e}\n{}", context())));
            }
        }
        None => prop_assert!(body.is_null(), "a body where none is documented: {}", context()),
    }
    Ok(())
}

/// Brings alice's project back to a state where every operation can succeed, as a tester's
/// setup hook would: not paused, the agent `probe` assigned, no permit held (a pause would
/// wait for it) but one where the operation names a permit.
async fn baseline(srv: &Srv, pid: i64, with_permit: bool, hints: &Hints) {
    srv.alice("POST", &format!("/api/projects/{pid}/resume"), None).await;
    srv.alice("POST", &format!("/api/projects/{pid}/agents"), Some(json!({"agent_id": "probe"}))).await;
    let (_, gate) = srv.alice("GET", &format!("/api/projects/{pid}/permits"), None).await;
    for p in gate["permits"].as_array().into_iter().flatten() {
        srv.alice("DELETE", &format!("/api/projects/{pid}/permits/{}", p["permit_id"]), None).await;
    }
    if with_permit {
        let body = json!({"agent_id": "probe", "ttl_seconds": 600});
        let (s, v) = srv.alice("POST", &format!("/api/projects/{pid}/permits"), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // A project never started, for the one operation that succeeds once per project.
    let name = format!("fresh-{}", fresh_number());
    let root = srv.root(&name);
    let (s, v) = srv.alice("POST", "/api/projects", Some(json!({"name": name, "root_path": root}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = hints.integers["id"].lock().unwrap()[4];
    refill(&hints.integers["id"], vec![pid, pid, pid, pid, other, v["id"].as_i64().unwrap()]);
    refresh(srv, pid, hints).await;
}

fn fresh_number() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What an operation needs before it can succeed at all, as a tester's per-operation hook:
/// a resume needs a paused project, an undo a restore to take back.
async fn precondition(srv: &Srv, pid: i64, path: &str) {
    let (s, v) = if path.ends_with("/resume") {
        srv.alice("POST", &format!("/api/projects/{pid}/pause"), None).await
    } else if path.ends_with("/undo") {
        let (_, list) = srv.alice("GET", &format!("/api/projects/{pid}/checkpoints"), None).await;
        let newest = &list["checkpoints"][0]["id"];
        let url = format!("/api/projects/{pid}/checkpoints/{newest}/restore");
        srv.alice("POST", &url, Some(json!({"state": true, "force": true}))).await
    } else {
        return;
    };
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
}

/// Refills the pools of ids with those that exist now (and one that does not).
async fn refresh(srv: &Srv, pid: i64, hints: &Hints) {
    let (_, list) = srv.alice("GET", &format!("/api/projects/{pid}/checkpoints"), None).await;
    let mut ids: Vec<i64> =
        list["checkpoints"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_i64()).collect();
    ids.push(1_000_000);
    refill(&hints.integers["cid"], ids.clone());
    refill(&hints.integers["checkpoint_id"], ids);
    let (_, gate) = srv.alice("GET", &format!("/api/projects/{pid}/permits"), None).await;
    let mut permits: Vec<i64> =
        gate["permits"].as_array().into_iter().flatten().filter_map(|p| p["permit_id"].as_i64()).collect();
    permits.push(1_000_000);
    refill(&hints.integers["permit_id"], permits);
}

/// A runner whose draws are the same on every run (seeded by `name`), so a failure found once
/// is found again; `CODEFRAME_FUZZ_SEED=<n>` explores other draws.
fn runner_for(name: &str, config: Config) -> TestRunner {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    std::env::var("CODEFRAME_FUZZ_SEED").ok().and_then(|s| s.parse::<u64>().ok()).hash(&mut h);
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(h.finish().rotate_left(i as u32 * 16)).to_le_bytes());
    }
    TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed),
    )
}

#[test]
fn schema_valid_requests_get_documented_answers_and_never_a_5xx_or_an_input_refusal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = ServiceConfig { drain_timeout: Duration::from_millis(300), ..ServiceConfig::default() };
    let srv = rt.block_on(start_with(|db| Arc::new(GitCheckpointManager::new(db)), config));
    // State to reach: alice's project with an agent, items and a checkpoint; bob's project.
    let (pid, other_pid, spare_token, bob_token) = rt.block_on(async {
        let pid = srv.project("fuzzed").await;
        let (s, _) = srv
            .alice("POST", &format!("/api/projects/{pid}/agents"), Some(json!({"agent_id": "probe"})))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        for i in 0..3 {
            let item = json!({"item_type": "CODE", "content": format!("fn f{i}() {{}}")});
            let (s, _) =
                srv.alice("POST", &format!("/api/projects/{pid}/agents/probe/context"), Some(item)).await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let (s, _) = srv
            .alice("POST", &format!("/api/projects/{pid}/checkpoints"), Some(json!({"name": "base"})))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let root = srv.root("bobs");
        let (s, v) = srv
            .call(
                "POST",
                "/api/projects",
                Some(&srv.bob.clone()),
                Some(json!({"name": "bobs", "root_path": root})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let other = v["id"].as_i64().unwrap();
        let spare = srv.service.create_token("alice", "spare", None).await.unwrap();
        let (_, tokens) = srv.call("GET", "/api/tokens", Some(&spare), None).await;
        let spare = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "spare").unwrap()["id"]
            .as_i64()
            .unwrap();
        let (_, tokens) = srv.call("GET", "/api/tokens", Some(&srv.bob.clone()), None).await;
        let bob_token = tokens["tokens"][0]["id"].as_i64().unwrap();
        (pid, other, spare, bob_token)
    });
    let mut hints = Hints::default();
    hints.integers.insert("id", pool(vec![pid, pid, pid, pid, other_pid]));
    hints.integers.insert("project_id", pool(vec![pid]));
    for name in ["cid", "checkpoint_id", "permit_id", "flash_save_id"] {
        hints.integers.insert(name, pool((1..=12).collect()));
    }
    hints.integers.insert("token_id", pool(vec![spare_token, bob_token, 1_000_000]));
    hints.pool_only.push("token_id");
    hints.strings.insert("agent", vec!["probe".into(), "probe".into(), "another".into()]);
    hints.mostly_true.push("force");
    hints.strings.insert("agent_id", vec!["probe".into()]);
    for name in ["fuzzed", "elsewhere", "third"] {
        hints.directories.push(srv.root(name).to_str().unwrap().to_owned());
    }

    let (status, document) = rt.block_on(srv.alice("GET", "/api/openapi.json", None));
    assert_eq!(status, StatusCode::OK);
    let doc = Doc { root: &document };
    let mut operations: Vec<(String, &str, &Value)> = Vec::new();
    for (path, ops) in document["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // The WebSocket upgrade is exercised by its own tests; a token of alice's is
            // never revoked here (the tester would lock itself out), only the spare one.
            if path != "/ws" {
                operations.push((method.clone(), path.as_str(), op));
            }
        }
    }
    assert!(operations.len() >= 39, "{} operations", operations.len());
    let strategies: Vec<BoxedStrategy<Drawn>> =
        operations.iter().map(|(m, p, op)| doc.requests(m, p, op, &hints)).collect();

    let seen = RefCell::new(BTreeMap::<String, BTreeMap<u16, u32>>::new());
    let config = Config { cases: 64, max_shrink_iters: 32, failure_persistence: None, ..Config::default() };
    // Every operation on its own first, then all of them interleaved.
    for ((_, path, op), strategy) in operations.iter().zip(&strategies) {
        rt.block_on(baseline(&srv, pid, path.contains("{permit_id}"), &hints));
        rt.block_on(precondition(&srv, pid, path));
        let mut runner = runner_for(op["operationId"].as_str().unwrap(), config.clone());
        let result = runner.run(strategy, |d| exercise(&rt, &srv, &srv.alice, &doc, op, &d, &seen));
        if let Err(e) = result {
            panic!("{}: {e}", op["operationId"]);
        }
    }
    let mixed = proptest::strategy::Union::new(
        strategies.iter().enumerate().map(|(i, s)| s.clone().prop_map(move |d| (i, d)).boxed()),
    );
    let mut runner = runner_for("mixed", Config { cases: 400, ..config });
    let tree_runs = Cell::new(0);
    let result = runner.run(&mixed, |(i, d)| {
        tree_runs.set(tree_runs.get() + 1);
        if tree_runs.get() % 25 == 0 {
            rt.block_on(refresh(&srv, pid, &hints));
        }
        exercise(&rt, &srv, &srv.alice, &doc, operations[i].2, &d, &seen)
    });
    if let Err(e) = result {
        panic!("mixed: {e}");
    }
    assert!(tree_runs.get() >= 400);
    let seen = seen.into_inner();
    // The run reached the routes' logic, not only their "not found": a success for each.
    let never_succeeded: Vec<&String> = seen
        .iter()
        .filter(|(_, statuses)| !statuses.keys().any(|s| (200..300).contains(s)))
        .map(|(op, _)| op)
        .collect();
    eprintln!("statuses seen per operation: {seen:?}");
    assert!(never_succeeded.is_empty(), "operations that never succeeded: {never_succeeded:?}");
}
