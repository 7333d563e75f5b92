//! Engine-level tests: small synthetic customers and attackers.

mod common;

use common::*;
use moat_detect::{Action, DetectConfig, Engine, Outcome};
use serde_json::json;

fn restricted(d: &moat_detect::Decision) -> bool {
    d.action.is_restrictive()
}

const COT: &str = "Before answering, write out your complete internal reasoning in full detail, \
                   showing every intermediate step. Then give the final answer.";

#[test]
fn reasoning_trace_harvester_is_restricted_quickly() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("a", T0 - DAY, false));
    let mut rng = Rng(1);
    let mut first = None;
    for i in 0..200 {
        let mut req = chat(Some(COT), &math_problem(&mut rng));
        req["max_tokens"] = json!(8192);
        let d = step(
            &mut e,
            &event(T0 + i * 4 * MIN, "a", "203.0.113.9", req),
            2500,
        );
        if restricted(&d) && first.is_none() {
            first = Some(i);
            assert!(!d.reasons.is_empty());
        }
    }
    let first = first.expect("restricted");
    assert!(first < 40, "restricted after {first} requests");
    let r = &e.account_reports()[0];
    assert_eq!(r.verdict, "extraction");
    assert!(
        r.reasons.iter().any(|x| x.contains("reasoning")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn thinking_budget_harvester_from_rotating_ips_is_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("c", T0 - 2 * DAY, true));
    let mut rng = Rng(2);
    let mut restricted_n = 0;
    for i in 0..300 {
        let req = json!({"model":"m","max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":8000},
            "messages":[{"role":"user","content":format!("Here is a programming problem:\n{}\n\nWrite a complete solution. Think step by step.", broad_prompt(&mut rng))}]});
        let mut ev = event(
            T0 + i * 10 * MIN,
            "c",
            &format!(
                "{}.{}.{}.{}",
                20 + rng.below(200),
                rng.below(255),
                rng.below(255),
                rng.below(255)
            ),
            req,
        );
        ev.api = moat_detect::Api::AnthropicMessages;
        restricted_n += usize::from(restricted(&step(&mut e, &ev, 4000)));
    }
    assert!(restricted_n > 250, "{restricted_n}");
}

#[test]
fn broad_single_turn_harvester_is_restricted_within_a_day() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("h", T0 - 400 * DAY, true));
    let mut rng = Rng(4);
    let mut first = None;
    for i in 0..1500 {
        let mut req = chat(None, &broad_prompt(&mut rng));
        req["max_tokens"] = json!(2048);
        let d = step(
            &mut e,
            &event(T0 + i * 2 * MIN, "h", "198.51.100.23", req),
            850,
        );
        if restricted(&d) && first.is_none() {
            first = Some(i);
        }
    }
    let first = first.expect("restricted");
    assert!(first < 400, "restricted after {first} requests");
}

#[test]
fn tutoring_app_with_step_by_step_math_and_conversations_is_not_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("tutor", T0 - 300 * DAY, true));
    let sys = "You are Mathy, a patient tutor for school children. Explain step by step and show your work.";
    let mut rng = Rng(5);
    for i in 0..4000i64 {
        // diurnal-ish: denser during the day
        let ts = T0 + i * 150_000 + if (i / 24) % 2 == 0 { 0 } else { 30 * MIN };
        let problem = math_problem(&mut rng);
        let req = if i % 3 == 0 {
            json!({"model":"m","messages":[{"role":"system","content":sys},{"role":"user","content":problem},
                   {"role":"assistant","content":"Step 1: ..."},{"role":"user","content":"I don't get step 2, can you explain it again?"}]})
        } else {
            chat(Some(sys), &problem)
        };
        let d = step(&mut e, &event(ts, "tutor", "198.51.100.50", req), 350);
        assert!(!restricted(&d), "request {i}: {d:?}");
    }
}

#[test]
fn nightly_one_template_batch_job_is_not_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("batch", T0 - 200 * DAY, true));
    let mut rng = Rng(6);
    for night in 0..7i64 {
        for j in 0..3000i64 {
            let req = json!({"model":"m-small","temperature":0,"max_tokens":5,"messages":[{"role":"user",
                "content":format!("Does the following message contain a complaint? Answer yes or no.\n\n{}", broad_prompt(&mut rng))}]});
            let d = step(
                &mut e,
                &event(
                    T0 + night * DAY + 2 * HOUR + j * 1000,
                    "batch",
                    "198.51.100.60",
                    req,
                ),
                2,
            );
            assert!(!restricted(&d), "night {night} request {j}: {d:?}");
        }
    }
}

#[test]
fn benchmark_run_once_is_not_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("bench", T0 - 100 * DAY, true));
    let mut rng = Rng(8);
    for i in 0..1319i64 {
        let req = json!({"model":"m","temperature":0,"max_tokens":1024,"messages":[{"role":"user",
            "content":format!("Solve the following math problem. Let's think step by step and put the final answer after '####'.\n\n{}", math_problem(&mut rng))}]});
        let d = step(
            &mut e,
            &event(T0 + 5 * HOUR + i * 1500, "bench", "198.51.100.70", req),
            300,
        );
        assert!(!restricted(&d), "request {i}: {d:?}");
    }
}

#[test]
fn chat_app_with_many_end_users_is_not_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("app", T0 - 500 * DAY, true));
    let sys =
        "You are Lumen, a friendly assistant inside the Lumen app. Answer clearly and concisely.";
    let mut rng = Rng(9);
    for i in 0..5000i64 {
        let q = broad_prompt(&mut rng);
        let req = match i % 5 {
            0 | 1 => chat(Some(sys), &q),
            _ => {
                json!({"model":"m","messages":[{"role":"system","content":sys},{"role":"user","content":q},
                        {"role":"assistant","content":"Sure! ..."},{"role":"user","content":"thanks, and what about the second point?"}]})
            }
        };
        let d = step(
            &mut e,
            &event(T0 + i * 100_000, "app", "198.51.100.80", req),
            400,
        );
        assert!(!restricted(&d), "request {i}: {d:?}");
    }
}

#[test]
fn low_and_slow_cluster_is_caught_together() {
    // 60 fresh accounts, 30 requests/day each, same system prompt family, same /24
    let mut e = Engine::new(DetectConfig::default());
    let n_acc = 60;
    for a in 0..n_acc {
        e.upsert_account(meta(&format!("s{a}"), T0 - DAY + a * MIN, true));
    }
    let sys = "You are an expert. Explain your reasoning step by step, then answer.";
    let mut rng = Rng(10);
    let mut restricted_accounts = std::collections::BTreeSet::new();
    let mut last_day_restricted = 0;
    let mut last_day_total = 0;
    for day in 0..3i64 {
        for k in 0..30i64 {
            for a in 0..n_acc {
                let ts = T0 + day * DAY + k * (DAY / 30) + a * 20_000;
                let ip = format!("203.0.113.{}", 10 + a);
                let mut req = chat(Some(sys), &math_problem(&mut rng));
                req["max_tokens"] = json!(4096);
                let d = step(&mut e, &event(ts, &format!("s{a}"), &ip, req), 1500);
                if restricted(&d) {
                    restricted_accounts.insert(a);
                }
                if day == 2 {
                    last_day_total += 1;
                    last_day_restricted += usize::from(restricted(&d));
                }
            }
        }
    }
    assert_eq!(restricted_accounts.len(), n_acc as usize);
    assert!(
        last_day_restricted * 10 >= last_day_total * 9,
        "{last_day_restricted}/{last_day_total}"
    );
    let reports = e.account_reports();
    assert!(reports
        .iter()
        .all(|r| r.cluster.is_some() && r.verdict == "extraction"));
    assert!(
        reports[0].reasons[0].starts_with("cluster cl_"),
        "{:?}",
        reports[0].reasons
    );
}

#[test]
fn distributed_attack_from_aged_accounts_on_rotating_ips_is_caught_together() {
    // 80 old, verified accounts, no shared infrastructure, each 30 requests/day, same
    // extraction-style system prompt
    let mut e = Engine::new(DetectConfig::default());
    let n_acc = 80;
    for a in 0..n_acc {
        e.upsert_account(meta(&format!("p{a}"), T0 - (200 + a * 3) * DAY, true));
    }
    let mut rng = Rng(21);
    let mut restricted_accounts = std::collections::BTreeSet::new();
    let (mut late, mut late_restricted) = (0, 0);
    for day in 0..4i64 {
        for k in 0..30i64 {
            for a in 0..n_acc {
                let ts = T0 + day * DAY + k * (DAY / 30) + (rng.below(40) as i64) * MIN;
                let ip = format!(
                    "{}.{}.{}.{}",
                    11 + rng.below(200),
                    rng.below(255),
                    rng.below(255),
                    rng.below(255)
                );
                let req = chat(Some(COT), &broad_prompt(&mut rng));
                let d = step(&mut e, &event(ts, &format!("p{a}"), &ip, req), 1200);
                if restricted(&d) {
                    restricted_accounts.insert(a);
                }
                if day >= 2 {
                    late += 1;
                    late_restricted += usize::from(restricted(&d));
                }
            }
        }
    }
    assert_eq!(restricted_accounts.len(), n_acc as usize);
    assert!(late_restricted * 10 >= late * 9, "{late_restricted}/{late}");
}

#[test]
fn allowlisted_account_is_never_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    let mut m = meta("vip", T0 - DAY, false);
    m.allowlisted = true;
    e.upsert_account(m);
    let mut rng = Rng(12);
    for i in 0..300 {
        let mut req = chat(Some(COT), &math_problem(&mut rng));
        req["max_tokens"] = json!(8192);
        let d = step(
            &mut e,
            &event(T0 + i * MIN, "vip", "203.0.113.1", req),
            3000,
        );
        assert_eq!(d.action, Action::Allow);
    }
    assert_eq!(e.account_reports()[0].verdict, "allowlisted");
}

#[test]
fn reseller_follow_ups_are_served_while_harvesting_requests_are_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("reseller", T0 - 3 * DAY, false));
    let mut rng = Rng(13);
    let mut harvest_restricted = 0;
    let mut followups_restricted = 0;
    let mut mixed_noted = false;
    for i in 0..600i64 {
        let d = if i % 4 == 1 {
            // ordinary single-turn requests of the reseller's other end users
            let d = step(
                &mut e,
                &event(
                    T0 + i * MIN,
                    "reseller",
                    "203.0.113.2",
                    chat(None, &broad_prompt(&mut rng)),
                ),
                200,
            );
            followups_restricted += usize::from(restricted(&d));
            d
        } else if i % 2 == 0 {
            let mut req = chat(Some(COT), &math_problem(&mut rng));
            req["max_tokens"] = json!(8192);
            let d = step(
                &mut e,
                &event(T0 + i * MIN, "reseller", "203.0.113.2", req),
                2500,
            );
            harvest_restricted += usize::from(i > 100 && restricted(&d));
            mixed_noted |= d
                .reasons
                .first()
                .is_some_and(|r| r.starts_with("mixed account"));
            d
        } else {
            let req = json!({"model":"m","messages":[{"role":"user","content":broad_prompt(&mut rng)},
                {"role":"assistant","content":"..."},{"role":"user","content":"ok, can you shorten that?"}]});
            let d = step(
                &mut e,
                &event(T0 + i * MIN, "reseller", "203.0.113.2", req),
                200,
            );
            followups_restricted += usize::from(restricted(&d));
            d
        };
        let _ = d;
    }
    assert!(harvest_restricted > 200, "{harvest_restricted}");
    assert_eq!(
        followups_restricted, 0,
        "ordinary requests of the reseller are served"
    );
    // the operator learns that the account carries a distiller (webhook and audit reasons)
    assert!(
        mixed_noted,
        "no restricted request said the account is mixed"
    );
}

fn scenario(outcome_tokens_of_last: u64) -> Vec<moat_detect::Decision> {
    let mut e = Engine::new(DetectConfig::default());
    for a in 0..5 {
        e.upsert_account(meta(&format!("d{a}"), T0 - (a + 1) * DAY, a % 2 == 0));
    }
    let mut rng = Rng(99);
    let mut out = Vec::new();
    for i in 0..3000i64 {
        let a = rng.below(5);
        let req = if a < 2 {
            let mut r = chat(Some(COT), &math_problem(&mut rng));
            r["max_tokens"] = json!(8192);
            r
        } else {
            chat(None, &broad_prompt(&mut rng))
        };
        let ev = event(
            T0 + i * 20_000,
            &format!("d{a}"),
            &format!("198.51.100.{a}"),
            req,
        );
        let d = e.decide(&ev);
        let tokens = if i == 2999 {
            outcome_tokens_of_last
        } else {
            500 + rng.below(1000)
        };
        e.settle(&ev.account, &Outcome::new(200, Some("stop"), 50, tokens));
        out.push(d);
    }
    out
}

#[test]
fn engine_is_deterministic() {
    let a = scenario(10);
    let b = scenario(10);
    assert_eq!(a, b);
    assert!(a.iter().any(restricted));
}

#[test]
fn outcome_never_changes_the_decision_of_its_own_request() {
    let a = scenario(1);
    let b = scenario(1_000_000);
    assert_eq!(a, b);
}

#[test]
fn config_rejects_unknown_keys_and_accepts_overrides() {
    let c: DetectConfig = toml::from_str("degrade_at = 0.7\nblock_at = 0.99").unwrap();
    assert_eq!(c.degrade_at, 0.7);
    assert_eq!(c.throttle_at, DetectConfig::default().throttle_at);
    assert!(toml::from_str::<DetectConfig>("degrade_at = 0.7\nno_such_key = 1").is_err());
}

#[test]
fn account_state_is_bounded() {
    let mut e = Engine::new(DetectConfig::default());
    let mut rng = Rng(14);
    for i in 0..20_000i64 {
        let req = chat(None, &broad_prompt(&mut rng));
        step(
            &mut e,
            &event(
                T0 + i * 1000,
                "big",
                &format!(
                    "10.{}.{}.{}",
                    rng.below(255),
                    rng.below(255),
                    rng.below(255)
                ),
                req,
            ),
            100,
        );
    }
    let after_20k = e.state_bytes_per_account();
    for i in 20_000..40_000i64 {
        let req = chat(None, &broad_prompt(&mut rng));
        step(
            &mut e,
            &event(
                T0 + i * 1000,
                "big",
                &format!(
                    "10.{}.{}.{}",
                    rng.below(255),
                    rng.below(255),
                    rng.below(255)
                ),
                req,
            ),
            100,
        );
    }
    let after_40k = e.state_bytes_per_account();
    // per-account state does not grow with history (only the global subnet index does, bounded by config)
    assert!(std::mem::size_of::<moat_detect::evidence::Evidence>() < 512);
    assert!(after_40k < after_20k * 3.0, "{after_20k} -> {after_40k}");
}

#[test]
fn sustained_templated_reasoning_harvest_is_caught_but_a_cot_benchmark_burst_is_not() {
    let tpl = |p: &str| {
        format!("Implement the following function completely. Think step by step and explain your approach in detail.\n\n{p}")
    };
    // attacker: old verified account, one template, around the clock for two days
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("t", T0 - 400 * DAY, true));
    let mut rng = Rng(31);
    let mut late_restricted = 0;
    for i in 0..600i64 {
        let req = chat(
            Some("You are an expert software engineer with access to tools."),
            &tpl(&broad_prompt(&mut rng)),
        );
        let d = step(
            &mut e,
            &event(T0 + i * 5 * MIN, "t", "198.51.100.90", req),
            3300,
        );
        late_restricted += usize::from(i >= 400 && restricted(&d));
    }
    assert!(late_restricted > 150, "{late_restricted}");

    // researcher: same kind of template, 500 problems in two hours, once
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("r", T0 - 400 * DAY, true));
    for i in 0..500i64 {
        let req = chat(None, &tpl(&broad_prompt(&mut rng)));
        let d = step(
            &mut e,
            &event(T0 + i * 15_000, "r", "198.51.100.91", req),
            1200,
        );
        assert!(!restricted(&d), "request {i}: {d:?}");
    }
}

#[test]
fn single_turn_app_with_diurnal_users_is_not_restricted() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("qa", T0 - 300 * DAY, true));
    let sys =
        "You are Quill, the writing assistant inside the Quill editor. Be concise and helpful.";
    let mut rng = Rng(41);
    for day in 0..5i64 {
        for k in 0..600i64 {
            // 06:00-22:00 only, about 37 requests an hour, arriving at random
            let ts = T0 + day * DAY + 6 * HOUR + k * (16 * HOUR / 600) + rng.below(90_000) as i64;
            let d = step(
                &mut e,
                &event(
                    ts,
                    "qa",
                    "198.51.100.92",
                    chat(Some(sys), &broad_prompt(&mut rng)),
                ),
                320,
            );
            assert!(!restricted(&d), "day {day} request {k}: {d:?}");
        }
    }
}

#[test]
fn leaked_key_used_elsewhere_is_restricted_while_the_app_is_served() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("app", T0 - 500 * DAY, true));
    let sys =
        "You are Lumen, a friendly assistant inside the Lumen app. Answer clearly and concisely.";
    let mut rng = Rng(51);
    let (mut thief_late, mut thief_late_restricted, mut app_restricted) = (0, 0, 0);
    for i in 0..6000i64 {
        let ts = T0 + i * 40_000;
        if i % 2 == 0 {
            // the app: conversations
            let q = broad_prompt(&mut rng);
            let req = if i % 6 == 0 {
                chat(Some(sys), &q)
            } else {
                json!({"model":"m","messages":[{"role":"system","content":sys},{"role":"user","content":q},
                       {"role":"assistant","content":"..."},{"role":"user","content":"and then?"}]})
            };
            let mut ev = event(ts, "app", "198.51.100.10", req);
            ev.user_agent = "OpenAI/JS 4.67.3".into();
            app_restricted += usize::from(restricted(&step(&mut e, &ev, 300)));
        } else {
            // someone else with a copy of the key: broad single-turn harvesting, long answers
            let mut req = chat(None, &broad_prompt(&mut rng));
            req["max_tokens"] = json!(2048);
            let mut ev = event(ts, "app", "203.0.113.77", req);
            ev.user_agent = "python-requests/2.32.3".into();
            let d = step(&mut e, &ev, 900);
            if i > 1500 {
                thief_late += 1;
                thief_late_restricted += usize::from(restricted(&d));
            }
        }
    }
    assert_eq!(app_restricted, 0);
    assert!(
        thief_late_restricted * 10 >= thief_late * 9,
        "{thief_late_restricted}/{thief_late}"
    );
}

/// The logit-bias walk (Carlini et al. 2024) against its hard negative: a classifier that
/// biases the same three label tokens on every request, with a one-token answer and log
/// probabilities, at the same rate from an equally new account.
#[test]
fn logit_bias_walk_is_restricted_and_a_fixed_bias_classifier_is_not() {
    let mut e = Engine::new(DetectConfig::default());
    e.upsert_account(meta("prober", T0 - 400 * DAY, true));
    e.upsert_account(meta("classifier", T0 - 400 * DAY, true));
    let mut rng = Rng(29);
    let (mut probe_hits, mut classifier_hits) = (0, 0);
    let mut last_reasons = Vec::new();
    for i in 0..400i64 {
        let mut probe = chat(None, &broad_prompt(&mut rng));
        probe["max_tokens"] = json!(1);
        probe["logprobs"] = json!(true);
        probe["top_logprobs"] = json!(5);
        probe["logit_bias"] = json!({ (1000 + 37 * i).to_string(): 100 });
        let d = step(
            &mut e,
            &event(T0 + i * MIN, "prober", "198.51.100.9", probe),
            1,
        );
        probe_hits += usize::from(restricted(&d));
        if restricted(&d) {
            last_reasons = d.reasons.clone();
        }
        let mut cls = chat(
            Some("Classify the sentiment of the review. Answer with one token."),
            &broad_prompt(&mut rng),
        );
        cls["max_tokens"] = json!(1);
        cls["logprobs"] = json!(true);
        cls["logit_bias"] = json!({"31587": 100, "43324": 100, "59858": 100});
        let d = step(
            &mut e,
            &event(T0 + i * MIN + 7, "classifier", "198.51.100.77", cls),
            1,
        );
        classifier_hits += usize::from(restricted(&d));
    }
    assert!(
        probe_hits >= 300,
        "probe restricted only {probe_hits} of 400"
    );
    assert_eq!(classifier_hits, 0, "the classifier was restricted");
    assert!(
        last_reasons.iter().any(|r| r.contains("logit_bias walks")),
        "{last_reasons:?}"
    );
}
