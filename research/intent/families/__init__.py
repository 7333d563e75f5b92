"""Hand-written phrasing families. Each family is one way of asking (a framing), written in
several languages; `{T}` marks where the carried task goes (when absent, the composer puts the
task before or after the instruction). See ../README.md."""
