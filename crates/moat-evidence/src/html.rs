//! The pack as one self-contained HTML page (inline CSS and SVG, no script, no external
//! resources), and the timeline chart as SVG.

use std::fmt::Write;

use crate::{DayPoint, EvidencePack, Link};

/// HTML-escape text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn num(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// Requests (bars) and tokens (line) per day, as a standalone SVG document.
pub fn timeline_svg(days: &[DayPoint]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 300.0, 60.0, 70.0, 20.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max_r = days.iter().map(|d| d.requests).max().unwrap_or(1).max(1) as f64;
    let max_t = days.iter().map(|d| d.tokens).max().unwrap_or(1).max(1) as f64;
    let n = days.len().max(1) as f64;
    let bw = pw / n;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"##
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/><line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"/>"##,
        y = top + ph,
        x2 = left + pw
    );
    let mut path = String::new();
    for (i, d) in days.iter().enumerate() {
        let x = left + i as f64 * bw;
        let bh = d.requests as f64 / max_r * ph;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4a78c2"><title>{} requests on {}</title></rect>"##,
            x + bw * 0.1,
            top + ph - bh,
            (bw * 0.8).max(1.0),
            bh,
            d.requests,
            d.day
        );
        let ty = top + ph - d.tokens as f64 / max_t * ph;
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            x + bw / 2.0,
            ty
        );
        let every = (days.len() / 10).max(1);
        if i % every == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                x + bw / 2.0,
                top + ph + 16.0,
                &d.day[5..]
            );
        }
    }
    let _ = write!(
        s,
        r##"<path d="{path}" fill="none" stroke="#d9534f" stroke-width="2"/>"##
    );
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}" fill="#4a78c2">max {} requests/day</text><text x="{}" y="{}" text-anchor="end" fill="#d9534f">max {} tokens/day</text>"##,
        top - 6.0,
        num(max_r as u64),
        left + pw + right - 4.0,
        top - 6.0,
        num(max_t as u64)
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">day (UTC) — bars: requests, line: tokens (input + output)</text></svg>"##,
        left + pw / 2.0,
        h - 8.0
    );
    s
}

fn link_table(out: &mut String, title: &str, links: &[Link], limit: usize) {
    let _ = write!(
        out,
        "<h3>{} ({})</h3><table><tr><th>{}</th><th>accounts</th><th>exchanges</th></tr>",
        esc(title),
        links.len(),
        esc(title)
    );
    for l in links.iter().take(limit) {
        let shared = if l.accounts.len() > 1 {
            " class=\"shared\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{shared}><td><code>{}</code></td><td>{}</td><td class=n>{}</td></tr>",
            esc(&l.value),
            esc(&l.accounts.join(", ")),
            num(l.exchanges)
        );
    }
    if links.len() > limit {
        let _ = write!(
            out,
            "<tr><td colspan=3>… {} more in evidence.json</td></tr>",
            links.len() - limit
        );
    }
    out.push_str("</table>");
}

/// The whole page.
pub fn render(p: &EvidencePack) -> String {
    let mut o = String::new();
    let cur = esc(&p.prices.currency);
    let title = match &p.selection.cluster {
        Some(c) => format!("Evidence pack: cluster {c}"),
        None => format!("Evidence pack: {} account(s)", p.accounts.len()),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>\
body{{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}}\
table{{border-collapse:collapse;margin:8px 0 16px}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}}\
th{{background:#f0f0f0}}.n{{text-align:right}}.shared{{background:#fff3cd}}\
.big{{font-size:22px;font-weight:bold}}.box{{display:inline-block;border:1px solid #ccc;padding:8px 16px;margin:4px}}\
pre{{white-space:pre-wrap;background:#f7f7f7;padding:6px;font-size:12px;max-height:200px;overflow:auto}}\
</style></head><body><h1>{t}</h1><p>Generated {g} from the moat audit log {log}. Integrity: records seq {a}–{b}, \
signed checkpoint of {cts} (Ed25519 key <code>{pk}</code>). Check with <code>moat evidence verify DIR</code>.</p>",
        t = esc(&title),
        g = esc(&p.generated_at),
        log = esc(&p.proof.checkpoint.log_id),
        a = p.proof.first_seq,
        b = p.proof.checkpoint.seq,
        cts = esc(&p.proof.checkpoint.ts),
        pk = esc(&p.proof.checkpoint.public_key),
    );
    let t = &p.totals;
    for (label, v) in [
        ("accounts", num(p.accounts.len() as u64)),
        ("exchanges", num(t.exchanges)),
        ("input tokens", num(t.input_tokens)),
        ("output tokens", num(t.output_tokens)),
        (
            "reasoning-request output tokens",
            num(t.reasoning_output_tokens),
        ),
        ("value at list prices", format!("{:.2} {cur}", p.value)),
    ] {
        let _ = write!(o, "<div class=box><div class=big>{v}</div>{label}</div>");
    }
    o.push_str("<h2>Timeline</h2>");
    o.push_str(&timeline_svg(&p.timeline));
    o.push_str("<h2>Accounts</h2><table><tr><th>account</th><th>first seen</th><th>last seen</th><th>exchanges</th><th>served</th><th>input</th><th>output</th><th>reasoning-req. output</th><th>value</th><th>max risk</th><th>strongest action</th><th>clusters</th></tr>");
    for a in &p.accounts {
        let t = &a.totals;
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.2}</td><td class=n>{:.3}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.account), esc(&a.first_seen), esc(&a.last_seen), num(t.exchanges), num(t.served),
            num(t.input_tokens), num(t.output_tokens), num(t.reasoning_output_tokens), a.value, a.max_risk,
            esc(&a.max_action), esc(&a.clusters.join(", "))
        );
    }
    o.push_str("</table><h2>How the accounts are linked</h2><p>Rows used by more than one account are highlighted.</p>");
    link_table(&mut o, "API keys", &p.links.keys, 50);
    link_table(&mut o, "IPs", &p.links.ips, 30);
    link_table(&mut o, "/24 subnets", &p.links.subnets, 30);
    link_table(&mut o, "user agents", &p.links.user_agents, 20);
    o.push_str("<h2>Detection reasons</h2><table><tr><th>reason</th><th>exchanges</th><th>first given</th><th>accounts</th></tr>");
    for r in p.reasons.iter().take(40) {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.reason),
            num(r.count),
            esc(&r.first),
            esc(&r.accounts.join(", "))
        );
    }
    o.push_str("</table><h2>Enforcement actions</h2><table><tr><th>time</th><th>account</th><th>action</th><th>source</th><th>record</th><th>detail</th></tr>");
    for a in &p.actions {
        let _ = write!(
            o,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.ts),
            esc(&a.account),
            esc(&a.action),
            esc(&a.source),
            a.seq.map(|s| s.to_string()).unwrap_or_default(),
            esc(&a.detail)
        );
    }
    o.push_str("</table><h2>Value at list prices</h2><table><tr><th>model</th><th>input / M tokens</th><th>output / M tokens</th></tr>");
    for (m, pr) in &p.prices.models {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=n>{:.4} {cur}</td><td class=n>{:.4} {cur}</td></tr>",
            esc(m),
            pr.input,
            pr.output
        );
    }
    o.push_str("</table><h2>Sample exchanges</h2>");
    for s in &p.samples {
        let _ = write!(
            o,
            "<h4>seq {} · {} · {}</h4><pre>{}</pre>",
            s.seq,
            esc(&s.account),
            esc(&s.ts),
            esc(&s.request)
        );
        if let Some(r) = &s.response {
            let _ = write!(o, "<pre>{}</pre>", esc(r));
        }
    }
    o.push_str("<h2>Clone-verification report</h2>");
    match &p.verify_report {
        Some(v) => {
            let _ = write!(
                o,
                "<pre>{}</pre>",
                esc(&serde_json::to_string_pretty(v).unwrap_or_default())
            );
        }
        None => o.push_str("<p>None supplied.</p>"),
    }
    let cp = &p.proof.checkpoint;
    let _ = write!(
        o,
        "<h2>Integrity proof</h2><p>The pack holds every chain link from seq {} to seq {}: the {} records above in full \
(their hashes are recomputed from their content) and the other records of the log by their leaf hash only. \
The recomputed chain must end at the head signed by the checkpoint below.</p><table>\
<tr><th>log</th><td><code>{}</code></td></tr><tr><th>checkpoint seq</th><td>{}</td></tr>\
<tr><th>head hash</th><td><code>{}</code></td></tr><tr><th>signed at</th><td>{}</td></tr>\
<tr><th>public key</th><td><code>{}</code></td></tr><tr><th>signature</th><td><code>{}</code></td></tr></table></body></html>",
        p.proof.first_seq,
        cp.seq,
        num(t.exchanges),
        esc(&cp.log_id),
        cp.seq,
        esc(&cp.head_hash),
        esc(&cp.ts),
        esc(&cp.public_key),
        esc(&cp.signature)
    );
    o
}
