use super::*;

#[test]
fn embedded_model_loads() {
    let m = IntentModel::embedded();
    assert!(m.buckets() >= 256);
    let s = m.score("", "");
    for p in s.as_array() {
        assert!((0.0..=1.0).contains(&p));
    }
}

#[test]
fn rejects_corrupt_files() {
    let mut b = EMBEDDED_MODEL.to_vec();
    assert!(IntentModel::from_bytes(&b[..20]).is_err());
    let last = b.len() - 10;
    b[last] ^= 1;
    assert_eq!(IntentModel::from_bytes(&b).unwrap_err(), ModelError::Checksum);
    assert!(IntentModel::from_bytes(b"nope").is_err());
}
