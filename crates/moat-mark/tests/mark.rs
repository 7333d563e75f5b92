use moat_mark::{detect, Detection, Keyring, MarkConfig, MarkKey, Marker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn key(id: &str, seed: u8) -> MarkKey {
    MarkKey::new(id, [seed; 32]).unwrap()
}

fn marker(seed: u8) -> Marker {
    Marker::new(Keyring::new(key("k", seed)), MarkConfig::default())
}

/// The context schemes the properties below must hold for: the default (two content words),
/// the unigram mark (no context), and the previous word (stop words included) folded into 4
/// classes.
fn schemes() -> [MarkConfig; 3] {
    [
        MarkConfig::default(),
        MarkConfig {
            context_words: 0,
            ..MarkConfig::default()
        },
        MarkConfig {
            context_words: 1,
            context_stop_words: true,
            context_buckets: 4,
            ..MarkConfig::default()
        },
    ]
}

const PROSE: &str = "Sure! Here is a big overview. Moreover, the large model is often used, \
and it doesn't matter much. Everyone knows that someone will choose the largest option. \
For example, you can't always modify the file; it is not nearly as simple. \
Perhaps this is exactly what anybody would do toward the end. Finally, we do not know.\n\n\
Additionally, the results were not entirely clear, particularly for the bigger runs. \
They usually rarely alter things, and mainly choose approximately the same kinds of tools.\n";

/// Random text generator mixing eligible words, traps and markup.
fn random_text(rng: &mut StdRng, words: usize) -> String {
    const VOCAB: &[&str] = &[
        "big",
        "large",
        "Big",
        "Large",
        "bigger",
        "largest",
        "do",
        "not",
        "don't",
        "Don't",
        "is",
        "isn't",
        "are",
        "aren't",
        "can't",
        "cannot",
        "will",
        "won't",
        "you",
        "it",
        "the",
        "a",
        "an",
        "for",
        "example",
        "instance",
        "kinds",
        "types",
        "of",
        "often",
        "so",
        "usually",
        "Moreover",
        "Also",
        "also",
        "Finally",
        "thus",
        "far",
        "everyone",
        "anybody",
        "perhaps",
        "maybe",
        "nearly",
        "almost",
        "entirely",
        "alter",
        "ego",
        "select",
        "few",
        "model",
        "data",
        "Paris",
        "John",
        "works",
        "fine",
        "quickly",
        "do’nt",
        "don’t",
        "café",
        "naïve",
        "日本語",
        "emoji🙂",
        "x",
        "Do",
        "Is",
        "by",
        "and",
        "at",
        "toward",
        "towards",
        "it",
        "It",
        "it's",
        "It’s",
        "here",
        "Here's",
        "there",
        "there's",
        "that",
        "that's",
        "I",
        "I'm",
        "am",
        "you're",
        "We're",
        "they",
        "will",
        "I'll",
        "you'll",
        "been",
        "not",
        "not",
        "never",
        "Sure",
        "Absolutely",
        "First",
        "firstly",
        "In",
        "in",
        "summary",
        "conclusion",
        "using",
        "utilizing",
        "is",
        "is",
        "are",
        "addition",
        "addition,",
        "have",
        "haven't",
        "what",
        "What's",
        "they'll",
        "had",
        "hasn't",
        "Certainly",
        "roughly",
        "approximately",
        "half",
        "$5",
        "30",
    ];
    const SEPS: &[&str] = &[
        " ",
        " ",
        " ",
        " ",
        " ",
        " ",
        ", ",
        ". ",
        "! ",
        "? ",
        "\n",
        "\n\n",
        "  ",
        " (",
        ") ",
        " \"",
        "\" ",
        " `",
        "` ",
        " {",
        "} ",
        " - ",
        "-",
        "/",
        " http://a.b/big ",
        " 3 ",
        "\n```\n",
        "\n    ",
        "\t",
        "’",
        "'",
        " **",
        "** ",
        ";",
        ": ",
        "\r\n",
        " “",
        "” ",
        "\n~~~~\n",
        " e.g. ",
        " mail@x.org ",
    ];
    let mut s = String::new();
    for _ in 0..words {
        s.push_str(VOCAB[rng.gen_range(0..VOCAB.len())]);
        if rng.gen_bool(0.6) {
            s.push(' ');
        } else {
            s.push_str(SEPS[rng.gen_range(0..SEPS.len())]);
        }
    }
    s
}

/// Splits `text` at random char boundaries (including empty chunks and 1-byte chunks).
fn random_chunks<'a>(rng: &mut StdRng, text: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let mut j = (i + rng.gen_range(0..12)).min(text.len());
        while !text.is_char_boundary(j) {
            j += 1;
        }
        out.push(&text[i..j]);
        i = j;
    }
    out
}

fn stream_mark(m: &Marker, chunks: &[&str]) -> String {
    let mut s = m.stream();
    let mut out = String::new();
    for c in chunks {
        out.push_str(&s.push(c));
    }
    out.push_str(&s.finish());
    out
}

#[test]
fn streaming_equals_batch_random_chunkings() {
    for cfg in schemes() {
        streaming_equals_batch(&Marker::new(Keyring::new(key("k", 1)), cfg));
    }
}

fn streaming_equals_batch(m: &Marker) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut texts = vec![PROSE.to_string(), String::new(), "x".into(), "don't".into()];
    // Over-long runs of every kind (cut at content-determined points).
    for n in [255, 256, 257, 600] {
        let sp = " ".repeat(n);
        let ideo = "\u{3000}".repeat(n / 3);
        texts.push(format!("It is{sp}big and large{sp}\n{sp}big\n\nlarge x"));
        texts.push(format!(
            "Sure, it{ideo}is big.\n{}\nlarge big\n{}\nbig",
            "`".repeat(n),
            "`".repeat(n)
        ));
        texts.push(format!("a {} big {}", "x".repeat(n), "{".repeat(n)));
    }
    for n in 0..300 {
        texts.push(random_text(&mut rng, 1 + n % 80));
    }
    for t in &texts {
        let whole = m.mark(t);
        for _ in 0..8 {
            let chunks = random_chunks(&mut rng, t);
            assert_eq!(
                stream_mark(m, &chunks),
                whole,
                "text {t:?} chunks {chunks:?}"
            );
        }
        // One char at a time.
        let chars: Vec<String> = t.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(stream_mark(m, &refs), whole);
    }
}

#[test]
fn marking_is_idempotent_and_every_scored_position_hits() {
    // Rewrites never change eligibility or contexts, so marking twice is a no-op and the
    // detector finds the active key's choice at every scored position.
    for cfg in schemes() {
        idempotent_and_every_position_hits(&Marker::new(Keyring::new(key("k", 2)), cfg));
    }
}

fn idempotent_and_every_position_hits(m: &Marker) {
    let cfg = m.config();
    let mut rng = StdRng::seed_from_u64(7);
    let mut texts = vec![PROSE.to_string()];
    for n in 0..600 {
        texts.push(random_text(&mut rng, 5 + n % 120));
    }
    let (mut changed, mut scored) = (0, 0);
    for t in &texts {
        let (once, st) = m.mark_with_stats(t);
        changed += st.changed;
        assert_eq!(m.mark(&once), once, "not idempotent for {t:?}");
        let d = &m.detect(&once)[0];
        assert_eq!(d.hits, d.scored, "text {t:?} -> {once:?}");
        scored += d.scored;
        // The set of eligible positions is the same before and after marking.
        assert_eq!(
            moat_mark::eligible_positions(t, cfg),
            moat_mark::eligible_positions(&once, cfg),
        );
    }
    // The generator must actually exercise rewriting (per text, so the few distinct tuples
    // of a unigram mark still add up).
    assert!(
        changed > 1000 && scored > 1000,
        "{cfg:?}: changed {changed} scored {scored}"
    );
}

#[test]
fn marked_prose_is_detected_and_unmarked_is_not() {
    let m = marker(3);
    let marked = m.mark(PROSE);
    let d = &m.detect(&marked)[0];
    assert!(d.scored >= 15, "{d:?}");
    assert_eq!(d.hits, d.scored);
    assert!(d.p_value < 1e-4, "{d:?}");
    // Another key sees nothing special.
    let other = detect(&marked, &Keyring::new(key("other", 99)));
    assert!(other[0].p_value > 1e-3, "{other:?}");
}

#[test]
fn quality_examples() {
    let m = marker(4);
    let (out, stats) = m.mark_with_stats(PROSE);
    assert!(stats.eligible > 15);
    assert!(stats.changed > 0 && stats.changed <= stats.eligible);
    assert!(stats.changed_fraction() < 0.2);
    // Length of changed text is similar and words are preserved outside eligible ones.
    let a: Vec<&str> = PROSE.split_whitespace().collect();
    let b: Vec<&str> = out.split_whitespace().collect();
    assert!((a.len() as i64 - b.len() as i64).abs() <= stats.changed as i64);
}

#[test]
fn protected_spans_are_untouched() {
    // Every eligible word below is in a protected span or position; try many keys.
    let text = "Use `big` here and \"a big deal\" there, or “the large one”.\n\
                See https://example.com/big/large and www.large.org or big.example.com.\n\
                Mail big@large.com now; version 2big and large3 and big_large.\n\
                The JSON {\"size\": \"big\", \"also\": [large, big]} stays.\n\
                Ask Big Ben and the Large Hadron Collider; BIG and LARGE too.\n\
                \n```python\nbig = large  # don't change\nprint('do not')\n```\n\
                \n    indented big code don't\n\
                \tlarge tab code\n\
                ~~~\nlarge\n~~~\n\
                * list item:\n\t```\nfor instance big\n```\n\
                1. step\n   ```sh\nthe large one\n   ```\n\
                large-scale and big-data and x/big and big/y.\n";
    for seed in 0..40u8 {
        let m = marker(seed);
        let out = m.mark(text);
        assert_eq!(out, text, "seed {seed} changed a protected span");
    }
}

#[test]
fn numbers_code_urls_names_never_change_in_mixed_text() {
    let text = "The big model has 175 billion parameters, roughly 3.5 times larger.\n\
                Paris is a large city; New York is big too. Don't visit http://big.com.\n\
                ```\nlet large = 42; // don't\n```\nIt is not `big` at 10:30 on 2024-01-02.";
    let protected = [
        "175",
        "3.5",
        "Paris",
        "New York",
        "http://big.com",
        "let large = 42; // don't",
        "`big`",
        "10:30",
        "2024-01-02",
    ];
    for seed in 0..40u8 {
        let out = marker(seed).mark(text);
        for p in protected {
            assert!(out.contains(p), "seed {seed}: {p:?} changed in {out:?}");
        }
    }
}

#[test]
fn capitalisation_is_preserved() {
    let text = "Don't worry. Large files are fine. Moreover, it isn't big.";
    let mut seen_variants = std::collections::HashSet::new();
    for seed in 0..40u8 {
        let out = marker(seed).mark(text);
        assert!(
            out.starts_with("Don't") || out.starts_with("Do not"),
            "{out}"
        );
        assert!(out.contains(". Large") || out.contains(". Big"), "{out}");
        seen_variants.insert(out);
    }
    assert!(
        seen_variants.len() > 4,
        "keys should produce different outputs"
    );
}

#[test]
fn apostrophe_style_follows_text() {
    // The text uses curly apostrophes; contracting uses them too.
    let text = "It’s fine. We do not know it. They are not here.";
    for seed in 0..20u8 {
        let out = marker(seed).mark(text);
        assert!(!out.contains('\''), "{out}");
    }
}

#[test]
fn question_inversions_are_not_expanded() {
    let text = "Why don't you try? Isn't it big? Can't we go? Don't the docs say so?";
    for seed in 0..30u8 {
        let out = marker(seed).mark(text);
        for bad in ["do not you", "Is not it", "Cannot we", "Do not the"] {
            assert!(!out.contains(bad), "{out}");
        }
    }
}

#[test]
fn key_rotation_old_key_still_verifies() {
    let old = key("2026-01", 10);
    let new = key("2026-02", 11);
    let ring_old = Keyring::new(old.clone());
    let marked_old = Marker::new(ring_old, MarkConfig::default()).mark(&PROSE.repeat(2));
    // Rotate: new key active, old kept for verification.
    let mut ring = Keyring::new(old);
    ring.add(new).unwrap();
    ring.set_active("2026-02").unwrap();
    assert_eq!(ring.active_id(), "2026-02");
    let m = Marker::new(ring.clone(), MarkConfig::default());
    let marked_new = m.mark(&PROSE.replace("Sure!", "Okay."));
    let d_old = m.detect(&marked_old);
    assert_eq!(d_old.len(), 2);
    let best = Detection::any_significant(&d_old, 1e-3).expect("old text verifies");
    assert_eq!(best.key_id, "2026-01");
    let d_new = m.detect(&marked_new);
    let best = Detection::any_significant(&d_new, 1e-3).expect("new verifies");
    assert_eq!(best.key_id, "2026-02");
    // Removing the old key: old text no longer verifies.
    ring.remove("2026-01").unwrap();
    assert!(
        ring.remove("2026-02").is_err(),
        "active key cannot be removed"
    );
    let d = detect(&marked_old, &ring);
    assert!(Detection::any_significant(&d, 1e-3).is_none(), "{d:?}");
}

#[test]
fn repeated_sentences_are_deduplicated() {
    let sentence = "The large model often doesn't choose the big option, and it is not nearly \
                    entirely clear. ";
    let text = sentence.repeat(100);
    let (total, unique) = moat_mark::eligible_positions(&text, MarkConfig::default());
    let (t1, u1) =
        moat_mark::eligible_positions(&(sentence.to_string() + sentence), MarkConfig::default());
    assert!(total >= 100 * 3, "{total}");
    // The repeats add at most one new context (the sentence start seen after the first copy).
    assert!(unique <= u1 && u1 <= t1, "{unique} {u1} {t1}");
    // Unmarked: not significant for any of many keys by repetition alone.
    for seed in 0..50u8 {
        let d = &detect(&text, &Keyring::new(key("k", seed)))[0];
        assert!(d.scored == unique as u64);
        assert!(d.p_value > 1e-3, "seed {seed}: {d:?}");
    }
}

#[test]
fn null_pvalues_are_roughly_uniform_over_keys() {
    // One unmarked text, 400 random keys: P(p <= a) <= a (discrete => conservative).
    let text = PROSE.to_string() + "Also, perhaps everyone can't select the biggest kinds of toys.";
    let mut below = [0usize; 3];
    let alphas = [0.5, 0.1, 0.02];
    let n = 400;
    for i in 0..n {
        let k = MarkKey::new("k", (i as u64).to_le_bytes().repeat(3)).unwrap();
        let d = &detect(&text, &Keyring::new(k))[0];
        for (j, a) in alphas.iter().enumerate() {
            if d.p_value <= *a {
                below[j] += 1;
            }
        }
    }
    for (j, a) in alphas.iter().enumerate() {
        let frac = below[j] as f64 / n as f64;
        assert!(
            frac <= a + 3.5 * (a * (1.0 - a) / n as f64).sqrt(),
            "alpha {a}: {frac}"
        );
    }
}

#[test]
fn keys_and_config_validation() {
    assert!(MarkKey::new("k", [0u8; 8]).is_err());
    assert!(MarkKey::new("", [0u8; 16]).is_err());
    let k = MarkKey::from_hex("k", "00112233445566778899aabbccddeeff").unwrap();
    assert!(!format!("{k:?}").contains("0011"));
    assert!(MarkKey::from_hex("k", "zz112233445566778899aabbccddeeff").is_err());
    assert!(Keyring::from_keys(vec![key("a", 1), key("a", 2)], "a").is_err());
    assert!(Keyring::from_keys(vec![key("a", 1), key("b", 2)], "c").is_err());
    // Without contractions, negations are left alone.
    let m = Marker::new(
        Keyring::new(key("k", 5)),
        MarkConfig {
            contractions: false,
            ..MarkConfig::default()
        },
    );
    for s in ["We do not know.", "We don't know."] {
        assert_eq!(m.mark(s), s);
    }
}

#[test]
fn sentence_adverbs_and_multiword_members() {
    let text = "In addition, it works. Also, it is fast. In addition to speed, it is small.";
    let mut seen = std::collections::HashSet::new();
    for seed in 0..60u8 {
        let out = marker(seed).mark(text);
        let first = out.split(',').next().unwrap().to_string();
        assert!(
            [
                "In addition",
                "Additionally",
                "Furthermore",
                "Moreover",
                "Also"
            ]
            .contains(&first.as_str()),
            "{out}"
        );
        assert!(out.contains("In addition to speed"), "{out}");
        seen.insert(first);
    }
    assert!(seen.len() >= 4, "{seen:?}");
}

#[test]
fn marker_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Marker>();
    assert_send_sync::<Keyring>();
    assert_send::<moat_mark::StreamMarker>();
}

#[test]
fn article_agreement_is_kept() {
    let text = "It is an entirely different thing, a completely new one, and an often used trick.";
    for seed in 0..40u8 {
        let out = marker(seed).mark(text);
        assert!(out.contains("an entirely different"), "{out}");
        assert!(out.contains("a completely new"), "{out}");
        assert!(out.contains("an often used"), "{out}");
    }
}

#[test]
fn long_marked_text_has_tiny_log_p() {
    let m = marker(9);
    let mut rng = StdRng::seed_from_u64(99);
    let text: String = (0..200).map(|_| random_text(&mut rng, 150)).collect();
    let marked = m.mark(&text);
    let d = &m.detect(&marked)[0];
    assert_eq!(d.hits, d.scored);
    assert!(d.scored > 150, "{d:?}");
    // Far below f64::MIN_POSITIVE would still be exact; here at least 1e-40.
    assert!(d.log10_p < -40.0, "{d:?}");
    assert!(d.z > 10.0);
    let unmarked = &detect(&text, &Keyring::new(key("other", 3)))[0];
    assert!(unmarked.log10_p > -6.0, "{unmarked:?}");
}

#[test]
fn accumulator_adds_evidence_across_texts() {
    let m = marker(12);
    let ring = m.keyring().clone();
    let mut acc = moat_mark::Accumulator::new(ring.clone(), MarkConfig::default());
    let mut rng = StdRng::seed_from_u64(5);
    let mut best_single = 0.0f64;
    for _ in 0..30 {
        let t = m.mark(&random_text(&mut rng, 60));
        best_single = best_single.min(m.detect(&t)[0].log10_p);
        acc.add(&t);
        // Adding the same text again adds nothing.
        acc.add(&t);
    }
    assert_eq!(acc.texts(), 60);
    let d = &acc.detections()[0];
    assert_eq!(d.hits, d.scored);
    assert!(d.log10_p < best_single - 3.0, "{d:?} vs {best_single}");
    // Unmarked texts do not accumulate evidence.
    let mut acc = moat_mark::Accumulator::new(ring, MarkConfig::default());
    for _ in 0..30 {
        acc.add(&random_text(&mut rng, 60));
    }
    assert!(acc.detections()[0].log10_p > -6.0);
}

/// Rewrites every occurrence of `from` (whole words) in `text` into `to`, the first `n` only
/// when `n` is given.
fn swap_words(text: &str, from: &str, to: &str, n: Option<usize>) -> String {
    let mut out = Vec::new();
    let mut left = n.unwrap_or(usize::MAX);
    for w in text.split(' ') {
        if w == from && left > 0 {
            left -= 1;
            out.push(to);
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

#[test]
fn a_repeated_tuple_votes_for_its_majority_member() {
    // Unigram mark: every "often"/"frequently" position is one tuple. The text is marked (all
    // occurrences carry the key's choice); a minority switched to the other member leaves the
    // tuple's vote (and the hit) unchanged, a majority switched flips it.
    let cfg = MarkConfig {
        context_words: 0,
        ..MarkConfig::default()
    };
    let m = Marker::new(Keyring::new(key("k", 21)), cfg);
    let text = "We often walk there. ".repeat(5);
    let marked = m.mark(&text);
    let keyed = if marked.contains("often") {
        "often"
    } else {
        "frequently"
    };
    let other = if keyed == "often" {
        "frequently"
    } else {
        "often"
    };
    let d = &m.detect(&marked)[0];
    assert_eq!((d.positions, d.scored, d.hits), (5, 1, 1));
    let minority = swap_words(&marked, keyed, other, Some(2));
    assert_eq!(m.detect(&minority)[0].hits, 1, "{minority}");
    let majority = swap_words(&marked, keyed, other, Some(3));
    assert_eq!(m.detect(&majority)[0].hits, 0, "{majority}");
    // A tie goes to the member seen first, whichever it is.
    let tie_keyed_first = swap_words(&"We often walk there. ".repeat(4), "often", keyed, None);
    let tie = format!(
        "{}{}",
        &tie_keyed_first[..tie_keyed_first.len() / 2],
        swap_words(
            &tie_keyed_first[tie_keyed_first.len() / 2..],
            keyed,
            other,
            None
        )
    );
    assert_eq!(m.detect(&tie)[0].hits, 1, "{tie}");
    let tie_other_first = format!(
        "{}{}",
        swap_words(
            &tie_keyed_first[..tie_keyed_first.len() / 2],
            keyed,
            other,
            None
        ),
        &tie_keyed_first[tie_keyed_first.len() / 2..]
    );
    assert_eq!(m.detect(&tie_other_first)[0].hits, 0, "{tie_other_first}");
}

#[test]
fn accumulated_votes_keep_the_null_distribution() {
    // Unmarked texts whose tuples recur with mixed members: under random keys the pooled
    // p-values stay conservative (P(p <= a) <= a), as for single occurrences.
    let cfg = MarkConfig {
        context_words: 0,
        ..MarkConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(77);
    let texts: Vec<String> = (0..40).map(|_| random_text(&mut rng, 80)).collect();
    let n = 300;
    let mut below = 0usize;
    for i in 0..n {
        let k = MarkKey::new("k", (i as u64 + 7).to_le_bytes().repeat(3)).unwrap();
        let mut acc = moat_mark::Accumulator::new(Keyring::new(k), cfg);
        for t in &texts {
            acc.add(t);
        }
        if acc.detections()[0].p_value <= 0.1 {
            below += 1;
        }
    }
    let frac = below as f64 / n as f64;
    assert!(frac <= 0.1 + 3.5 * (0.09 / n as f64).sqrt(), "{frac}");
}
