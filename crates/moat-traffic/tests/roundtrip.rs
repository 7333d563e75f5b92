use moat_traffic::{AccountRecord, JsonlReader, JsonlWriter, TrafficRecord};

const LINE: &str = r#"{"ts":"2026-03-02T14:05:09.312Z","account":"acct_0042","key":"key_0042_1","ip":"198.51.100.17","user_agent":"OpenAI/Python 1.51.0","api":"openai.chat","request":{"model":"m","messages":[{"role":"user","content":"..."}],"max_tokens":512},"response":{"status":200,"finish_reason":"stop","usage":{"input_tokens":812,"output_tokens":431}}}"#;

#[test]
fn parses_the_design_example_and_ignores_unknown_fields() {
    let r: TrafficRecord = serde_json::from_str(LINE).unwrap();
    assert_eq!(r.ts_ms(), 1_772_460_309_312);
    assert_eq!(r.response.usage.output_tokens, 431);
    let with_extra = LINE.replacen("{\"ts\"", "{\"zzz\":[1,2],\"ts\"", 1);
    assert_eq!(
        serde_json::from_str::<TrafficRecord>(&with_extra).unwrap(),
        r
    );
    // optional fields may be missing
    let min: TrafficRecord =
        serde_json::from_str(r#"{"ts":"2026-03-02T14:05:09Z","account":"a","api":"openai.chat"}"#)
            .unwrap();
    assert_eq!(min.response.status, 0);
    assert!(
        serde_json::from_str::<TrafficRecord>(r#"{"account":"a","api":"openai.chat"}"#).is_err()
    );
}

#[test]
fn writer_and_reader_round_trip_plain_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let r: TrafficRecord = serde_json::from_str(LINE).unwrap();
    for name in ["t.jsonl", "t.jsonl.zst"] {
        let p = dir.path().join(name);
        let mut w = JsonlWriter::create(&p).unwrap();
        w.write(&r).unwrap();
        w.write_raw_line("{broken").unwrap();
        w.write(&r).unwrap();
        w.finish().unwrap();
        let got: Vec<_> = JsonlReader::<TrafficRecord>::open(&p).unwrap().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 1);
        assert_eq!(got[0].1.as_ref().unwrap(), &r);
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.is_err());
        assert_eq!(got[2].1.as_ref().unwrap(), &r);
        let text = if name.ends_with(".zst") {
            String::from_utf8(zstd::decode_all(std::fs::File::open(&p).unwrap()).unwrap()).unwrap()
        } else {
            std::fs::read_to_string(&p).unwrap()
        };
        assert!(
            text.starts_with(r#"{"ts":"2026-03-02T14:05:09.312Z","account":"acct_0042""#),
            "{text}"
        );
    }
}

#[test]
fn account_records() {
    let a: AccountRecord = serde_json::from_str(
        r#"{"account":"acct_0042","created":"2026-02-20T09:00:00Z","tier":"free","email_domain":"example.com","country":"US","verified":false,"x":1}"#,
    )
    .unwrap();
    assert_eq!(a.verified, Some(false));
    assert_eq!(a.created_ms(), Some(1_771_578_000_000));
    assert!(!a.allowlisted);
    let b: AccountRecord = serde_json::from_str(r#"{"account":"b"}"#).unwrap();
    assert_eq!(b.created_ms(), None);
}
