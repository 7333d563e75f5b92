//! Runs the replay on a small generated traffic file (plain and .zst) with malformed
//! lines and checks the output contract.

use std::io::Write;
use std::path::Path;

use moat_replay::{run, ReplayOptions};
use serde_json::{json, Value};

const T0: i64 = 1_772_409_600_000;

fn ts(ms: i64) -> String {
    moat_traffic::format_rfc3339_ms(ms)
}

/// Returns the traffic lines and, per line, the kind: "ok:<account>" or "bad".
fn traffic() -> (Vec<Vec<u8>>, Vec<String>) {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut kinds = Vec::new();
    let cot = "Write out your complete internal reasoning, every intermediate step.";
    for i in 0..400i64 {
        let (account, req) = match i % 4 {
            0 | 1 => (
                "acct_harvest",
                json!({"model":"m","max_tokens":8192,"messages":[{"role":"system","content":cot},
                    {"role":"user","content":format!("Problem {i}: Tom has {} apples and buys {} more. How many now?", i % 17, i % 5)}]}),
            ),
            2 => (
                "acct_vip",
                json!({"model":"m","messages":[{"role":"user","content":format!("hello number {i}")}]}),
            ),
            _ => (
                "acct_dev",
                json!({"model":"m","messages":[{"role":"user","content":"What is a monad?"},
                    {"role":"assistant","content":"..."},{"role":"user","content":"an example in Haskell?"}]}),
            ),
        };
        let rec = json!({"ts": ts(T0 + i * 60_000), "account": account, "key": "k", "ip": "203.0.113.5",
            "user_agent": "test", "api": if i % 8 == 7 {"anthropic.messages"} else {"openai.chat"},
            "request": req, "unknown_field": {"ignored": true},
            "response": {"status": 200, "finish_reason": "stop", "usage": {"input_tokens": 50, "output_tokens": 900}}});
        lines.push(serde_json::to_vec(&rec).unwrap());
        kinds.push(format!("ok:{account}"));
        // sprinkle malformed lines
        let bad: Option<Vec<u8>> = match i {
            10 => Some(b"{not json".to_vec()),
            50 => Some(br#"{"ts":"2026-03-02T00:00:00Z","account":"x"}"#.to_vec()), // no api
            90 => Some(
                br#"{"ts":"yesterday","account":"x","api":"openai.chat","request":{}}"#.to_vec(),
            ),
            130 => Some(
                br#"{"ts":"2026-03-02T00:00:00Z","account":"x","api":"gemini","request":{}}"#
                    .to_vec(),
            ),
            170 => Some(Vec::new()),                   // empty line
            210 => Some(vec![0xff, 0xfe, b'{', b'}']), // not UTF-8
            _ => None,
        };
        if let Some(b) = bad {
            lines.push(b);
            kinds.push("bad".into());
        }
    }
    // minimal record: optional fields missing
    lines.push(br#"{"ts":"2026-03-02T10:00:00.000Z","account":"acct_min","api":"openai.completions","request":{"prompt":"hi"}}"#.to_vec());
    kinds.push("ok:acct_min".into());
    (lines, kinds)
}

fn write_inputs(
    dir: &Path,
    compressed: bool,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<String>) {
    let (lines, kinds) = traffic();
    let mut body = Vec::new();
    for l in &lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    let traffic = if compressed {
        let p = dir.join("traffic.jsonl.zst");
        std::fs::write(&p, zstd::encode_all(&body[..], 3).unwrap()).unwrap();
        p
    } else {
        let p = dir.join("traffic.jsonl");
        std::fs::write(&p, &body).unwrap();
        p
    };
    let accounts = dir.join("accounts.jsonl");
    let mut f = std::fs::File::create(&accounts).unwrap();
    writeln!(f, r#"{{"account":"acct_harvest","created":"2026-03-01T00:00:00Z","tier":"free","verified":false}}"#).unwrap();
    writeln!(
        f,
        r#"{{"account":"acct_vip","created":"2024-01-01T00:00:00Z","allowlisted":true,"extra":1}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"account":"acct_dev"}}"#).unwrap();
    writeln!(f, "garbage line").unwrap();
    (traffic, accounts, kinds)
}

fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check(compressed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (traffic, accounts, kinds) = write_inputs(dir.path(), compressed);
    let out = dir.path().join("out");
    let s = run(&ReplayOptions {
        traffic,
        accounts,
        out: out.clone(),
        config: None,
        snapshots: None,
    })
    .unwrap();
    let decisions = read_jsonl(&out.join("decisions.jsonl"));
    assert_eq!(decisions.len(), kinds.len(), "one decision per input line");
    assert_eq!(s.lines as usize, kinds.len());
    assert_eq!(s.malformed, 6);
    assert_eq!(s.account_records, 3);
    assert_eq!(s.malformed_account_records, 1);
    let mut harvest_restricted = 0;
    for (d, k) in decisions.iter().zip(&kinds) {
        let action = d["action"].as_str().unwrap();
        assert!(["allow", "throttle", "degrade", "challenge", "block"].contains(&action));
        let risk = d["risk"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&risk));
        assert!(d["reasons"].is_array());
        assert!(d["cluster"].is_null() || d["cluster"].as_str().unwrap().starts_with("cl_"));
        match k.as_str() {
            "bad" => assert_eq!(
                d,
                &json!({"action":"allow","risk":0.0,"reasons":[],"cluster":null})
            ),
            "ok:acct_vip" => assert_eq!(
                d["reasons"],
                json!(["account is allowlisted"]),
                "order preserved"
            ),
            "ok:acct_harvest" => {
                harvest_restricted += usize::from(action != "allow" && action != "throttle")
            }
            _ => assert!(action == "allow" || action == "throttle", "{k}: {d}"),
        }
    }
    assert!(harvest_restricted > 150, "{harvest_restricted}");
    let accounts = read_jsonl(&out.join("accounts.jsonl"));
    let names: Vec<&str> = accounts
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for want in ["acct_harvest", "acct_vip", "acct_dev", "acct_min"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let h = accounts
        .iter()
        .find(|a| a["account"] == "acct_harvest")
        .unwrap();
    assert_eq!(h["verdict"], "extraction");
    assert!(!h["reasons"].as_array().unwrap().is_empty());
    let v = accounts
        .iter()
        .find(|a| a["account"] == "acct_vip")
        .unwrap();
    assert_eq!(v["verdict"], "allowlisted");
}

#[test]
fn replay_plain_file_keeps_the_contract() {
    check(false);
}

#[test]
fn replay_zstd_file_keeps_the_contract() {
    check(true);
}

#[test]
fn replay_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (traffic, accounts, _) = write_inputs(dir.path(), true);
    let mut outs = Vec::new();
    for k in 0..2 {
        let out = dir.path().join(format!("out{k}"));
        run(&ReplayOptions {
            traffic: traffic.clone(),
            accounts: accounts.clone(),
            out: out.clone(),
            config: None,
            snapshots: None,
        })
        .unwrap();
        outs.push((
            std::fs::read(out.join("decisions.jsonl")).unwrap(),
            std::fs::read(out.join("accounts.jsonl")).unwrap(),
        ));
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn config_detect_table_overrides_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (traffic, accounts, _) = write_inputs(dir.path(), false);
    // thresholds above 1: nothing is ever restricted
    let cfg = dir.path().join("moat.toml");
    std::fs::write(
        &cfg,
        "[gateway]\nlisten = \"0.0.0.0:8080\"\n\n[detect]\nthrottle_at = 2.0\ndegrade_at = 2.0\nchallenge_at = 2.0\nblock_at = 2.0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let s = run(&ReplayOptions {
        traffic: traffic.clone(),
        accounts: accounts.clone(),
        out,
        config: Some(cfg.clone()),
        snapshots: None,
    })
    .unwrap();
    assert_eq!(s.actions["allow"], s.lines);

    std::fs::write(&cfg, "[detect]\ndegrade_at = 0.5\nbogus = 1\n").unwrap();
    let err = run(&ReplayOptions {
        traffic,
        accounts,
        out: dir.path().join("out2"),
        config: Some(cfg),
        snapshots: None,
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("bogus"), "{err:#}");
}

#[test]
fn live_engine_path_gives_the_same_decisions_as_replay() {
    // the gateway builds an Event with a serde_json::Value body and calls decide();
    // replay parses the line into a borrowed view: both must agree
    use moat_detect::{AccountMeta, Api, Decision, DetectConfig, Engine, Event, Outcome};
    use moat_traffic::{AccountRecord, JsonlReader, TrafficRecord};
    let dir = tempfile::tempdir().unwrap();
    let (traffic, accounts, _) = write_inputs(dir.path(), false);
    let out = dir.path().join("out");
    run(&ReplayOptions {
        traffic: traffic.clone(),
        accounts: accounts.clone(),
        out: out.clone(),
        config: None,
        snapshots: None,
    })
    .unwrap();
    let replayed = read_jsonl(&out.join("decisions.jsonl"));

    let mut engine = Engine::new(DetectConfig::default());
    for (_, r) in JsonlReader::<AccountRecord>::open(&accounts).unwrap() {
        let Ok(r) = r else { continue };
        engine.upsert_account(AccountMeta {
            id: r.account.clone(),
            created_ms: r.created_ms(),
            verified: r.verified,
            allowlisted: r.allowlisted,
            ..AccountMeta::default()
        });
    }
    let mut live = Vec::new();
    for (_, rec) in JsonlReader::<TrafficRecord>::open(&traffic).unwrap() {
        let d = match rec
            .ok()
            .and_then(|r| Api::from_wire(&r.api).map(|api| (r, api)))
        {
            Some((r, api)) => {
                let ev = Event {
                    ts_ms: r.ts_ms(),
                    account: r.account.clone(),
                    key: r.key.clone(),
                    ip: r.ip.clone(),
                    user_agent: r.user_agent.clone(),
                    api,
                    request: r.request.clone(),
                };
                let d = engine.decide(&ev);
                let u = r.response.usage;
                engine.settle(
                    &r.account,
                    &Outcome::new(
                        r.response.status,
                        r.response.finish_reason.as_deref(),
                        u.input_tokens,
                        u.output_tokens,
                    ),
                );
                d
            }
            None => Decision::allow(),
        };
        live.push(serde_json::to_value(&d).unwrap());
    }
    assert_eq!(live.len(), replayed.len());
    assert_eq!(live, replayed);
}
