//! The compose prompt: a small form (subject, then an optional body) for a message from the
//! operator to one agent. It takes every key while open; Enter sends, Esc cancels, Tab moves
//! between the two fields. Sending is a [`Command::SendMessage`]; the runtime sends it as the
//! console's own `operator` instance (see [`crate::net::Operator`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::msg::Command;

/// Longest subject the prompt accepts (the server keeps subjects short too).
const MAX_SUBJECT: usize = 200;
/// Longest body typed here (a nudge, not a document).
const MAX_BODY: usize = 2000;

/// Which field has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Field {
    #[default]
    Subject,
    Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    /// The recipient's instance id, and its name for the prompt.
    pub to_id: String,
    pub to_name: String,
    /// Set when this answers a message: the reply joins its thread.
    pub thread_id: Option<i64>,
    pub subject: String,
    pub body: String,
    pub field: Field,
    /// Why the last Enter did not send (an empty subject).
    pub problem: Option<String>,
}

/// What a key did to the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeAnswer {
    Pending,
    Cancel,
    Send(Command),
}

impl Compose {
    pub fn new(to_id: impl Into<String>, to_name: impl Into<String>) -> Self {
        Self {
            to_id: to_id.into(),
            to_name: to_name.into(),
            thread_id: None,
            subject: String::new(),
            body: String::new(),
            field: Field::Subject,
            problem: None,
        }
    }

    /// A reply in thread `thread_id`, its subject prefilled.
    pub fn reply(
        to_id: impl Into<String>,
        to_name: impl Into<String>,
        thread_id: i64,
        subject: &str,
    ) -> Self {
        let subject = if subject.to_lowercase().starts_with("re:") {
            subject.to_owned()
        } else {
            format!("Re: {subject}")
        };
        Self {
            thread_id: Some(thread_id),
            subject,
            ..Self::new(to_id, to_name)
        }
    }

    pub fn handle_key(&mut self, key: &KeyEvent) -> ComposeAnswer {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let (text, max) = match self.field {
            Field::Subject => (&mut self.subject, MAX_SUBJECT),
            Field::Body => (&mut self.body, MAX_BODY),
        };
        match key.code {
            KeyCode::Esc => return ComposeAnswer::Cancel,
            KeyCode::Enter => {
                let subject = self.subject.trim();
                if subject.is_empty() {
                    self.problem = Some("a message needs a subject".into());
                    self.field = Field::Subject;
                    return ComposeAnswer::Pending;
                }
                return ComposeAnswer::Send(Command::SendMessage {
                    to_id: self.to_id.clone(),
                    to_name: self.to_name.clone(),
                    subject: subject.to_owned(),
                    body: self.body.trim().to_owned(),
                    thread_id: self.thread_id,
                });
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                self.field = match self.field {
                    Field::Subject => Field::Body,
                    Field::Body => Field::Subject,
                };
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char('u') if ctrl => text.clear(),
            KeyCode::Char(c) if !ctrl && text.chars().count() < max => {
                text.push(c);
                self.problem = None;
            }
            _ => {}
        }
        ComposeAnswer::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn typed(c: &mut Compose, text: &str) {
        for ch in text.chars() {
            c.handle_key(&key(KeyCode::Char(ch)));
        }
    }

    #[test]
    fn subject_then_body_then_send() {
        let mut c = Compose::new("i1", "claude");
        assert_eq!(c.handle_key(&key(KeyCode::Enter)), ComposeAnswer::Pending);
        assert!(c.problem.is_some(), "no subject: not sent");
        typed(&mut c, "are you stuck?");
        c.handle_key(&key(KeyCode::Tab));
        typed(&mut c, "T-3 has been claimed for an hour");
        c.handle_key(&key(KeyCode::Backspace));
        assert_eq!(
            c.handle_key(&key(KeyCode::Enter)),
            ComposeAnswer::Send(Command::SendMessage {
                to_id: "i1".into(),
                to_name: "claude".into(),
                subject: "are you stuck?".into(),
                body: "T-3 has been claimed for an hou".into(),
                thread_id: None,
            })
        );
        assert_eq!(c.handle_key(&key(KeyCode::Esc)), ComposeAnswer::Cancel);
    }

    #[test]
    fn a_reply_keeps_the_thread() {
        let c = Compose::reply("i2", "cursor", 7, "question");
        assert_eq!((c.subject.as_str(), c.thread_id), ("Re: question", Some(7)));
        let c = Compose::reply("i2", "cursor", 7, "re: question");
        assert_eq!(c.subject, "re: question");
    }
}
