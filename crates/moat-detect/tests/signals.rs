//! Unit tests of the per-request signals, on small hand-built requests.

mod common;

use common::*;
use moat_detect::cadence::HourHistogram;
use moat_detect::signals::{grader, reasoning, shape, skeleton, topics};
use moat_detect::{Api, RequestFeatures, RequestView};
use serde_json::json;

fn features(req: serde_json::Value) -> RequestFeatures {
    RequestFeatures::from_parts(Api::OpenAiChat, &req, "198.51.100.7")
}

#[test]
fn reasoning_phrases_have_tiers() {
    assert_eq!(
        reasoning::phrase_score("What is the capital of France?"),
        0.0
    );
    assert_eq!(
        reasoning::phrase_score("Solve it step by step."),
        reasoning::WEAK
    );
    assert_eq!(
        reasoning::phrase_score("Let's think step by step."),
        reasoning::MEDIUM
    );
    assert_eq!(
        reasoning::phrase_score("Write out your complete INTERNAL REASONING before the answer."),
        reasoning::STRONG
    );
    assert_eq!(
        reasoning::phrase_score("Show all of your reasoning."),
        reasoning::STRONG
    );
}

#[test]
fn reasoning_phrases_in_other_languages() {
    assert_eq!(
        reasoning::phrase_score("Explique étape par étape."),
        reasoning::WEAK
    );
    assert_eq!(
        reasoning::phrase_score("Zeige deinen Denkprozess."),
        reasoning::STRONG
    );
    assert_eq!(
        reasoning::phrase_score("Опиши Ход рассуждений подробно"),
        reasoning::STRONG
    );
    assert_eq!(
        reasoning::phrase_score("请写出完整的思考过程"),
        reasoning::STRONG
    );
    assert_eq!(
        reasoning::phrase_score("Resuelve paso a paso"),
        reasoning::WEAK
    );
    assert_eq!(
        reasoning::phrase_score("Muestra tu proceso de pensamiento"),
        reasoning::STRONG
    );
}

#[test]
fn reasoning_from_system_or_user_text() {
    let f = features(chat(Some("Write out your full reasoning trace."), "2+2?"));
    assert_eq!(f.reasoning, reasoning::STRONG);
    let f = features(chat(None, "2+2? Show all your reasoning."));
    assert_eq!(f.reasoning, reasoning::STRONG);
}

#[test]
fn native_reasoning_budgets() {
    let req = json!({"model":"m","max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":8000},
                     "messages":[{"role":"user","content":"hi"}]});
    let f = RequestFeatures::from_parts(Api::AnthropicMessages, &req, "1.2.3.4");
    assert_eq!(f.thinking_budget, 8000);
    assert!(f.shape.has(shape::Shape::HUGE_MAX_TOKENS));
    let v = json!({"thinking":{"type":"disabled"}});
    assert_eq!(reasoning::native_reasoning(&RequestView::from_value(&v)), 0);
    let v = json!({"reasoning_effort":"high"});
    assert_eq!(
        reasoning::native_reasoning(&RequestView::from_value(&v)),
        8192
    );
    let v = json!({"reasoning":{"effort":"low"}});
    assert_eq!(
        reasoning::native_reasoning(&RequestView::from_value(&v)),
        512
    );
}

#[test]
fn harvest_shapes() {
    let s = |v: serde_json::Value| shape::shape(&RequestView::from_value(&v));
    assert!(!s(json!({"max_tokens": 1024, "temperature": 0.7})).any());
    assert!(s(json!({"max_tokens": 8192})).has(shape::Shape::HUGE_MAX_TOKENS));
    assert!(s(json!({"max_completion_tokens": 32000})).has(shape::Shape::HUGE_MAX_TOKENS));
    assert!(s(json!({"n": 4})).has(shape::Shape::MULTI_SAMPLE));
    assert!(s(json!({"logprobs": true, "top_logprobs": 5})).has(shape::Shape::LOGPROBS));
    assert!(s(json!({"logprobs": 5})).has(shape::Shape::LOGPROBS));
    assert!(s(json!({"logit_bias": {"1234": -100}})).has(shape::Shape::LOGIT_BIAS));
    assert!(!s(json!({"logit_bias": {}})).any());
    assert!(s(json!({"max_tokens": 1})).has(shape::Shape::ONE_TOKEN));
}

#[test]
fn grader_prompts() {
    assert!(grader::is_grader(
        "You are an impartial judge. Rate the following response on a scale of 1 to 10."
    ));
    assert!(grader::is_grader(
        "Which response is better, Response A or Response B?"
    ));
    assert!(!grader::is_grader("Rate my essay please"));
    assert!(
        features(chat(
            None,
            "As an impartial judge, compare the two responses and say which response is better."
        ))
        .grader
    );
}

#[test]
fn skeletons_match_templates_with_varied_slots() {
    let a = skeleton::skeleton_keys(
        "Translate the following text into French. Return only the translation.\n\nGood morning to you",
    );
    let b = skeleton::skeleton_keys(
        "Translate the following text into French. Return only the translation.\n\nWhere is the station?",
    );
    assert_eq!(a.0, b.0, "same template prefix");
    assert_ne!(a.1, b.1, "different slot at the end");
    // numbers fold: "Problem 12" and "Problem 47" share a skeleton
    let c =
        skeleton::skeleton_keys("Problem 12: compute the value of the expression below for x = 3");
    let d =
        skeleton::skeleton_keys("Problem 47: compute the value of the expression below for x = 9");
    assert_eq!(c.0, d.0);
    assert_eq!(c.1, d.1);
    // uninformative edges (numbers only) are no skeleton
    let e = skeleton::skeleton_keys("count down please from ten: 5 4 3 2 1 0");
    assert_eq!(e.1, 0);
    assert_eq!(skeleton::skeleton_keys(""), (0, 0));
}

#[test]
fn skeleton_table_is_bounded_and_keeps_heavy_hitters() {
    let mut t = skeleton::SkeletonTable::default();
    let template = 42u64;
    let mut rng = Rng(7);
    for i in 0..2000u64 {
        if i % 4 == 0 {
            t.observe(template);
        } else {
            t.observe(rng.next() | 1);
        }
    }
    assert!(
        t.count(template) >= 400,
        "template kept: {}",
        t.count(template)
    );
    assert_eq!(
        std::mem::size_of::<skeleton::SkeletonTable>(),
        16 * 8 + 16 * 4 + 8
    );
}

#[test]
fn conversation_structure() {
    let req = json!({"model":"m","messages":[
        {"role":"system","content":"You are Lumen."},
        {"role":"user","content":"What is Rust?"},
        {"role":"assistant","content":"A language."},
        {"role":"user","content":"Tell me more about its borrow checker."}]});
    let f = features(req);
    assert!(f.followup && !f.single_turn());
    let req = json!({"model":"m","messages":[
        {"role":"user","content":"fix the bug"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"read_file","input":{}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"..."}]}]});
    let f = RequestFeatures::from_parts(Api::AnthropicMessages, &req, "1.2.3.4");
    assert!(f.agent);
    assert!(features(chat(Some("sys prompt here, long enough"), "hello")).single_turn());
}

#[test]
fn topic_breadth_narrow_vs_broad() {
    let mut rng = Rng(3);
    let mut narrow = [0u16; topics::TOPICS];
    let mut broad = [0u16; topics::TOPICS];
    for _ in 0..300 {
        narrow[topics::topic(&math_problem(&mut rng)) as usize] += 1;
        broad[topics::topic(&broad_prompt(&mut rng)) as usize] += 1;
    }
    let (bn, bb) = (
        topics::breadth(&narrow).unwrap(),
        topics::breadth(&broad).unwrap(),
    );
    assert!(bn < 0.3, "math tutoring is narrow: {bn}");
    assert!(bb > 0.7, "corpus sampling is broad: {bb}");
    assert_eq!(
        topics::topic("Write a python function to reverse a string"),
        0
    );
    assert_eq!(topics::topic("zzz qqq"), topics::OTHER);
    let mut unknown = [0u16; topics::TOPICS];
    unknown[topics::OTHER as usize] = 100;
    unknown[1] = 5;
    assert_eq!(
        topics::breadth(&unknown),
        None,
        "mostly unclassified: unknown, not narrow"
    );
}

#[test]
fn cadence_flat_vs_diurnal() {
    let mut flat = HourHistogram::default();
    let mut human = HourHistogram::default();
    let mut rng = Rng(11);
    for _ in 0..2000 {
        flat.observe(T0 + rng.below(7 * DAY as u64) as i64);
        // office hours: 08:00-18:00 only
        let day = rng.below(7) as i64;
        human.observe(T0 + day * DAY + 8 * HOUR + rng.below(10 * HOUR as u64) as i64);
    }
    assert!(flat.flatness() > 0.98, "{}", flat.flatness());
    assert!(human.flatness() < 0.75, "{}", human.flatness());
}

#[test]
fn features_are_identical_from_value_and_from_text() {
    let text = r#"{"model":"m","system":[{"type":"text","text":"Think aloud."}],"max_tokens":9000,
        "tools":[{"name":"read_file","input_schema":{}}],
        "messages":[{"role":"user","content":[{"type":"text","text":"Implement \"quicksort\" in C."}]}]}"#;
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let from_value = RequestFeatures::from_parts(Api::AnthropicMessages, &v, "10.0.0.1");
    let view: RequestView<'_> = serde_json::from_str(text).unwrap();
    let from_text = RequestFeatures::from_view(Api::AnthropicMessages, &view, "10.0.0.1");
    assert_eq!(from_value, from_text);
    assert_eq!(from_value.reasoning, reasoning::STRONG);
    assert_ne!(from_value.tools_key, 0);
}

#[test]
fn clockwork_gaps_vs_random_gaps() {
    use moat_detect::evidence::{Context, Evidence};
    let f = RequestFeatures::default();
    let cx = Context::default();
    let mut clock = Evidence::default();
    let mut random = Evidence::default();
    let mut rng = Rng(17);
    let (mut t1, mut t2) = (T0, T0);
    for _ in 0..200 {
        t1 += 12_000 + rng.below(600) as i64; // every 12 s, ±2.5 %
        clock.observe(t1, &f, &cx);
        // exponential-ish gaps with mean ~60 s
        let u = (rng.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
        t2 += (-u.ln() * 60_000.0) as i64 + 1;
        random.observe(t2, &f, &cx);
    }
    let (mean, cv) = clock.gap_regularity().unwrap();
    assert!((mean - 12.3).abs() < 0.5 && cv < 0.05, "{mean} {cv}");
    let (_, cv) = random.gap_regularity().unwrap();
    assert!(cv > 0.7, "{cv}");
}
