//! ChatML prompts, as Qwen's chat template writes them.
//!
//! The GGUF carries the template as Jinja source (`tokenizer.chat_template`). Rather than embed a
//! Jinja engine, the one family this project uses is implemented directly, and the GGUF's
//! template is only read to check that it is ChatML and to find its default system message.
//! For messages without tools, Qwen2.5's template writes:
//!
//! ```text
//! <|im_start|>system\n{first system message, or the default}<|im_end|>\n
//! <|im_start|>{role}\n{content}<|im_end|>\n        (every other message)
//! <|im_start|>assistant\n                          (the generation prompt)
//! ```

use super::{GgufTokenizer, TokenizeError};
use candle_core::quantized::gguf_file::Content;

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A piece of a rendered prompt: template markup that must become a control token, or text
/// that must be tokenised as text whatever it contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Control(&'static str),
    Text(String),
}

#[derive(Debug, Default)]
struct Segments(Vec<Segment>);

impl Segments {
    fn control(&mut self, token: &'static str) {
        self.0.push(Segment::Control(token));
    }

    /// Adjacent text is merged so that it is tokenised in one piece, as llama.cpp tokenises
    /// everything between two control tokens.
    fn text(&mut self, text: &str) {
        match self.0.last_mut() {
            Some(Segment::Text(t)) => t.push_str(text),
            _ => self.0.push(Segment::Text(text.to_string())),
        }
    }

    fn turn(&mut self, role: Role, content: &str) {
        self.control(IM_START);
        self.text(role.as_str());
        self.text("\n");
        self.text(content);
        self.control(IM_END);
        self.text("\n");
    }
}

/// Qwen's ChatML template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    default_system: Option<String>,
}

impl ChatTemplate {
    /// ChatML with the given default system message (used when the chat does not start with
    /// one).
    pub fn chatml(default_system: Option<String>) -> Self {
        Self { default_system }
    }

    /// Reads `tokenizer.chat_template` from GGUF metadata; see [`ChatTemplate::from_source`].
    pub fn from_gguf(ct: &Content) -> Result<Self, TokenizeError> {
        let key = "tokenizer.chat_template";
        let source = ct
            .metadata
            .get(key)
            .ok_or(TokenizeError::MissingMetadata(key))?
            .to_string()
            .map_err(|e| TokenizeError::BadMetadata {
                key,
                reason: e.to_string(),
            })?;
        Self::from_source(source)
    }

    /// Recognises a ChatML template (Qwen2, Qwen2.5) from its Jinja source and extracts its
    /// default system message: the literal that follows `<|im_start|>system\n` in a string
    /// constant, as opposed to the branch that splices in `messages[0]['content']`.
    pub fn from_source(source: &str) -> Result<Self, TokenizeError> {
        let generation_prompt = r"<|im_start|>assistant\n";
        if !source.contains(IM_END) || !source.contains(generation_prompt) {
            return Err(TokenizeError::ChatTemplate(
                "not ChatML: no `<|im_end|>` or `<|im_start|>assistant\\n` in it".into(),
            ));
        }
        let marker = r"<|im_start|>system\n";
        let default_system = source.match_indices(marker).find_map(|(i, _)| {
            let rest = &source[i + marker.len()..];
            let candidate = &rest[..rest.find(IM_END)?];
            let literal = !candidate.contains(['\'', '"', '+', '{', '}', '\\']);
            literal.then(|| candidate.to_string())
        });
        Ok(Self { default_system })
    }

    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// The prompt as alternating control tokens and text.
    pub fn segments(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<Segment>, TokenizeError> {
        let first = messages.first().ok_or(TokenizeError::EmptyChat)?;
        let mut out = Segments::default();
        let rest = if first.role == Role::System {
            out.turn(Role::System, &first.content);
            &messages[1..]
        } else {
            if let Some(system) = &self.default_system {
                out.turn(Role::System, system);
            }
            messages
        };
        for m in rest {
            out.turn(m.role, &m.content);
        }
        if add_generation_prompt {
            out.control(IM_START);
            out.text(Role::Assistant.as_str());
            out.text("\n");
        }
        Ok(out.0)
    }

    /// The prompt as one string, exactly as the Jinja template renders it.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizeError> {
        Ok(self
            .segments(messages, add_generation_prompt)?
            .iter()
            .map(|s| match s {
                Segment::Control(c) => *c,
                Segment::Text(t) => t.as_str(),
            })
            .collect())
    }

    /// Token ids of the prompt: template markup becomes control ids, message content is always
    /// tokenised as text, so an article containing `<|im_start|>` cannot forge a turn.
    pub fn encode(
        &self,
        tokenizer: &GgufTokenizer,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TokenizeError> {
        let mut ids = Vec::new();
        for segment in self.segments(messages, add_generation_prompt)? {
            match segment {
                Segment::Control(c) => ids.push(
                    tokenizer
                        .token_id(c)
                        .ok_or_else(|| TokenizeError::MissingControlToken(c.to_string()))?,
                ),
                Segment::Text(t) => ids.extend(tokenizer.encode_text(&t)?),
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// The non-tool part of Qwen2.5's template, as stored in the GGUF files.
    const QWEN25_TEMPLATE: &str = "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

    #[test]
    fn finds_default_system_messages() {
        let t = ChatTemplate::from_source(QWEN25_TEMPLATE).unwrap();
        assert_eq!(
            t.default_system(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
        let t = ChatTemplate::from_source(QWEN2_TEMPLATE).unwrap();
        assert_eq!(t.default_system(), Some("You are a helpful assistant."));
    }

    #[test]
    fn rejects_other_templates() {
        let llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}";
        assert!(matches!(
            ChatTemplate::from_source(llama3),
            Err(TokenizeError::ChatTemplate(_))
        ));
    }

    #[test]
    fn renders_default_system_and_generation_prompt() {
        let t = ChatTemplate::from_source(QWEN25_TEMPLATE).unwrap();
        let got = t.render(&[ChatMessage::user("Bonjour")], true).unwrap();
        assert_eq!(
            got,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nBonjour<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn first_system_message_replaces_the_default_and_later_ones_are_turns() {
        let t = ChatTemplate::from_source(QWEN25_TEMPLATE).unwrap();
        let messages = [
            ChatMessage::system("S1"),
            ChatMessage::user("U"),
            ChatMessage::assistant("A"),
            ChatMessage::system("S2"),
        ];
        assert_eq!(
            t.render(&messages, false).unwrap(),
            "<|im_start|>system\nS1<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n"
        );
    }

    #[test]
    fn segments_alternate_between_markup_and_text() {
        let t = ChatTemplate::chatml(None);
        let segments = t
            .segments(&[ChatMessage::user("<|im_end|>")], true)
            .unwrap();
        assert_eq!(
            segments,
            [
                Segment::Control(IM_START),
                Segment::Text("user\n<|im_end|>".into()),
                Segment::Control(IM_END),
                Segment::Text("\n".into()),
                Segment::Control(IM_START),
                Segment::Text("assistant\n".into()),
            ]
        );
    }

    #[test]
    fn empty_chat_is_an_error() {
        assert!(matches!(
            ChatTemplate::chatml(None).render(&[], true),
            Err(TokenizeError::EmptyChat)
        ));
    }
}
