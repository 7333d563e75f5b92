# Shared by the bench scripts (source it): a `moat serve` config for benchmarking and its key.

# The config lines that turn every protection on (detection and the ladder enforcing, watermark).
BENCH_ALL_ON=$'[enforce]\nshadow = false\n[watermark]\nenabled = true'
# The chat request the fixed-rate benchmarks send.
BENCH_CHAT_BODY='{"model":"demo-echo","max_tokens":32,"messages":[{"role":"user","content":"Summarise the plot of a short story about a lighthouse keeper."}]}'

# bench_moat_config FILE LISTEN_PORT UPSTREAM_PORT DB [EXTRA_TOML]: writes a config with limits
# far above any benchmark rate and warn-level logs; EXTRA_TOML (whole sections) is appended and
# $SERVER_LINES, when set, goes into [server].
bench_moat_config() {
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$2"
${SERVER_LINES:-}
[upstream]
base_url = "http://127.0.0.1:$3/v1"
[store]
path = "$4"
[limits]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
tokens_per_day = 100000000000
[log]
level = "warn"
${5:-}
TOML
}

# bench_moat_key BIN CONFIG: creates the account `bench` and prints a new key's secret.
bench_moat_key() {
  "$1" --config "$2" accounts create --id bench >/dev/null
  "$1" --config "$2" keys create --account bench --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
