//! Prints a side-by-side example: `cargo run -p moat-mark --example mark_demo < text.txt`.
use moat_mark::{Keyring, MarkConfig, MarkKey, Marker};
use std::io::Read;

fn main() {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .expect("read stdin");
    let key = MarkKey::new("demo", *b"moat-mark demo key, not secret!!").expect("key");
    let m = Marker::new(Keyring::new(key), MarkConfig::default());
    let (out, st) = m.mark_with_stats(&text);
    println!("{out}");
    let d = &m.detect(&out)[0];
    eprintln!(
        "words {} eligible {} changed {} ({:.2}%) | scored {} hits {} p {:.3e} z {:.2}",
        st.words,
        st.eligible,
        st.changed,
        100.0 * st.changed_fraction(),
        d.scored,
        d.hits,
        d.p_value,
        d.z
    );
}
