//! The APIs the gateway serves.

use crate::error::Flavor;

/// One of the proxied endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/chat/completions`
    OpenAiChat,
    /// `POST /v1/completions`
    OpenAiCompletions,
    /// `GET /v1/models`
    OpenAiModels,
    /// `POST /v1/messages`
    AnthropicMessages,
}

impl Api {
    /// Name used in the audit log, the traffic format and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai.chat",
            Api::OpenAiCompletions => "openai.completions",
            Api::OpenAiModels => "openai.models",
            Api::AnthropicMessages => "anthropic.messages",
        }
    }

    /// Path on the upstream (and on the gateway).
    pub fn path(self) -> &'static str {
        match self {
            Api::OpenAiChat => "/v1/chat/completions",
            Api::OpenAiCompletions => "/v1/completions",
            Api::OpenAiModels => "/v1/models",
            Api::AnthropicMessages => "/v1/messages",
        }
    }

    /// Error format the caller expects.
    pub fn flavor(self) -> Flavor {
        match self {
            Api::AnthropicMessages => Flavor::Anthropic,
            _ => Flavor::OpenAi,
        }
    }

    /// Whether the OpenAI `stream_options.include_usage` mechanism applies.
    pub fn openai_streaming(self) -> bool {
        matches!(self, Api::OpenAiChat | Api::OpenAiCompletions)
    }
}
