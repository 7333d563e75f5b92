//! Configuration: [`raw`] mirrors the TOML file (unknown keys rejected with
//! their line), [`validated`] holds the typed values the gateway uses.

pub mod describe;
pub mod raw;
pub mod scale_out;
pub mod validated;

pub use scale_out::{BusSettings, LimiterBackend, StoreBackend, StoreOnError, ENV_STORE_URL};
pub use validated::{
    parse_cidr, parse_duration, AuditConfig, AuthConfig, Config, ConfigError, EmbeddedConfig,
    EmbeddedWatermark, Env, LimitsConfig, LogConfig, LogFormat, MetricsOn, NoEnv, ProcessEnv,
    Secret, ServerConfig, ServingThreads, StoreConfig, TlsConfig, UpstreamConfig, UpstreamTarget,
    ENV_ADMIN_TOKEN, ENV_SAMPLER_WATERMARK_SECRET, ENV_SERVER_THREADS, ENV_UPSTREAM_API_KEY,
};
