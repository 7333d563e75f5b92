//! Helpers to build small hand-made traffic for the engine tests.
#![allow(dead_code)]

use moat_detect::{AccountMeta, Api, Decision, Engine, Event, Outcome};
use serde_json::{json, Value};

/// 2026-03-02T00:00:00Z
pub const T0: i64 = 1_772_409_600_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

pub fn chat(system: Option<&str>, user: &str) -> Value {
    let mut msgs = Vec::new();
    if let Some(s) = system {
        msgs.push(json!({"role": "system", "content": s}));
    }
    msgs.push(json!({"role": "user", "content": user}));
    json!({"model": "m", "messages": msgs})
}

pub fn event(ts_ms: i64, account: &str, ip: &str, request: Value) -> Event {
    Event {
        ts_ms,
        account: account.to_string(),
        key: format!("key_{account}"),
        ip: ip.to_string(),
        user_agent: "test/1.0".to_string(),
        api: Api::OpenAiChat,
        request,
    }
}

pub fn meta(id: &str, created_ms: i64, verified: bool) -> AccountMeta {
    AccountMeta {
        id: id.to_string(),
        created_ms: Some(created_ms),
        tier: Some("build".to_string()),
        verified: Some(verified),
        ..AccountMeta::default()
    }
}

/// decide + settle with the given output tokens.
pub fn step(engine: &mut Engine, ev: &Event, out_tokens: u64) -> Decision {
    let d = engine.decide(ev);
    engine.settle(
        &ev.account,
        &Outcome::new(200, Some("stop"), 100, out_tokens),
    );
    d
}

/// Deterministic pseudo-random numbers (xorshift).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SUBJECTS: &[&str] = &[
    "write a python function that parses a csv file and reports errors",
    "what is the best marketing strategy for a small bakery business",
    "explain the causes of the first world war in simple terms",
    "give me a recipe for a vegetarian lasagna for six people",
    "how do i ask my manager for a raise after my performance review",
    "summarize the plot of the novel pride and prejudice",
    "what are the health benefits of regular exercise and good sleep",
    "translate this sentence into french: the weather is lovely today",
    "how does quantum entanglement work in physics",
    "plan a three day trip to lisbon with museums and food",
    "what should i invest in if i want a low risk portfolio and low tax",
    "write a short poem about autumn leaves and a lost friend",
    "is it ethical to eat meat, what do moral philosophers say",
    "help me debug this javascript error: undefined is not a function",
    "suggest a movie like inception with a complex story",
    "how many calories should an adult eat per day to lose weight",
];

const FILLER: &[&str] = &[
    "please",
    "quickly",
    "honestly",
    "today",
    "really",
    "detailed",
    "simple",
    "short",
    "friendly",
    "curious",
    "urgent",
    "quick",
    "question",
    "hello",
    "thanks",
    "maybe",
    "again",
    "also",
    "kindly",
    "briefly",
    "exactly",
    "clearly",
    "basically",
    "seriously",
    "actually",
    "tomorrow",
    "tonight",
    "weekend",
    "morning",
    "evening",
    "beginner",
    "expert",
    "student",
    "parent",
    "neighbor",
    "colleague",
];

fn filler(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| FILLER[rng.below(FILLER.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A broad, untemplated prompt (different every call).
pub fn broad_prompt(rng: &mut Rng) -> String {
    let s = SUBJECTS[rng.below(SUBJECTS.len() as u64) as usize];
    let head = filler(rng, 4);
    let tail = filler(rng, 5);
    format!("{head}: {s}, {tail}")
}

/// A grade-school math problem (narrow topic, varied wording).
pub fn math_problem(rng: &mut Rng) -> String {
    let names = [
        "Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana",
    ];
    let things = [
        "apples", "marbles", "stickers", "books", "pencils", "cookies",
    ];
    let n = names[rng.below(names.len() as u64) as usize];
    let t = things[rng.below(things.len() as u64) as usize];
    format!(
        "{n} has {} {t}. {n} buys {} more and gives away {}. How many {t} does {n} have now in total?",
        rng.below(90) + 10,
        rng.below(50) + 1,
        rng.below(9) + 1
    )
}
