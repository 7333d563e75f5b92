//! Posts action changes to an optional webhook, off the request path: events go into a
//! bounded queue (`try_send`; a full queue drops the event and counts it), and one background
//! task sends them one at a time with a timeout and retries (backoff 0.5 s, 1 s, 2 s, …).
//! The JSON body has a Slack-compatible `text` field plus the structured `event`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::config::WebhookConfig;

/// Sender side of the webhook queue.
#[derive(Debug, Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Value>,
}

impl Webhook {
    /// Starts the background sender (needs a tokio runtime).
    pub fn spawn(cfg: WebhookConfig) -> Webhook {
        let (tx, mut rx) = mpsc::channel::<Value>(cfg.queue);
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(cfg.timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "webhook client");
                    return;
                }
            };
            while let Some(body) = rx.recv().await {
                let mut delay = Duration::from_millis(500);
                let mut ok = false;
                for attempt in 0..=cfg.retries {
                    match client.post(&cfg.url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            ok = true;
                            break;
                        }
                        Ok(r) => {
                            tracing::warn!(status = r.status().as_u16(), attempt, "webhook refused")
                        }
                        Err(e) => tracing::warn!(error = %e, attempt, "webhook failed"),
                    }
                    if attempt < cfg.retries {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
                metrics::counter!("moat_enforce_webhook_total", "result" => if ok { "sent" } else { "failed" })
                    .increment(1);
            }
        });
        Webhook { tx }
    }

    /// Queues one event; never waits. `text` is the human-readable line.
    pub fn send(&self, text: String, event: Value) {
        if self
            .tx
            .try_send(json!({"text": text, "event": event}))
            .is_err()
        {
            metrics::counter!("moat_enforce_webhook_total", "result" => "dropped").increment(1);
        }
    }
}
