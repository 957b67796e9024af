//! Fitting a conversation into a model's context window with `outputReserve` tokens kept free.
//!
//! Token counts are estimated (about four characters per token, a flat cost per image and per
//! message): Tale talks to many model families and ships no tokenizer for each. The estimate errs
//! on the high side for English, so a prompt that fits here fits upstream.

use tale_llm::client::{Message, Part};

const CHARS_PER_TOKEN: u64 = 4;
const TOKENS_PER_MESSAGE: u64 = 4;
const TOKENS_PER_IMAGE: u64 = 1000;

pub fn estimate_tokens(m: &Message) -> u64 {
    let chars: usize = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.chars().count(),
            Part::Image(_) => 0,
        })
        .sum::<usize>()
        + m.tool_calls.iter().map(|c| c.name.len() + c.arguments.chars().count()).sum::<usize>();
    let images = m.parts.iter().filter(|p| matches!(p, Part::Image(_))).count() as u64;
    TOKENS_PER_MESSAGE + (chars as u64).div_ceil(CHARS_PER_TOKEN) + images * TOKENS_PER_IMAGE
}

/// The conversation does not fit even without earlier turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// Estimated tokens of the instructions and the newest message.
    pub needed: u64,
    /// Tokens the model takes for input once the output reserve is kept free.
    pub available: u64,
}

/// What fitting did, for the run log.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub messages: Vec<Message>,
    pub estimated_tokens: u64,
    /// Earliest messages left out to make room.
    pub dropped: usize,
}

/// Keeps `system` and the newest message, and as many of the latest earlier messages as fit in
/// `window - reserve`. A kept history never starts with an answer or a tool result whose
/// question was dropped.
pub fn fit(system: &Message, history: Vec<Message>, window: u64, reserve: u64) -> Result<Fitted, TooLong> {
    let available = window.saturating_sub(reserve);
    let costs: Vec<u64> = history.iter().map(estimate_tokens).collect();
    let fixed = estimate_tokens(system) + costs.last().copied().unwrap_or(0);
    if fixed > available {
        return Err(TooLong { needed: fixed, available });
    }
    // Walk back from the newest message, keeping while the budget allows.
    let mut total = fixed;
    let mut start = history.len().saturating_sub(1);
    while start > 0 && total + costs[start - 1] <= available {
        start -= 1;
        total += costs[start];
    }
    while start < history.len().saturating_sub(1) && history[start].role != tale_llm::client::Role::User {
        total -= costs[start];
        start += 1;
    }
    let mut messages = Vec::with_capacity(history.len() - start + 1);
    messages.push(system.clone());
    let dropped = start;
    messages.extend(history.into_iter().skip(start));
    Ok(Fitted { messages, estimated_tokens: total, dropped })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tale_llm::client::Role;

    fn m(role: Role, chars: usize) -> Message {
        Message::text(role, &"x".repeat(chars))
    }

    #[test]
    fn keeps_the_newest_turns_that_fit() {
        let system = m(Role::System, 400); // 104 tokens
        let history = vec![m(Role::User, 400), m(Role::Assistant, 400), m(Role::User, 400), m(Role::Assistant, 400), m(Role::User, 400)];
        let all = fit(&system, history.clone(), 10_000, 1000).unwrap();
        assert_eq!((all.messages.len(), all.dropped), (6, 0));
        assert_eq!(all.estimated_tokens, 6 * 104);
        // Room for the system, the newest question and three more messages: but the kept part
        // must start with a question, so the oldest kept answer goes too.
        let some = fit(&system, history.clone(), 1000 + 5 * 104, 1000).unwrap();
        assert_eq!(some.dropped, 2);
        assert_eq!(some.messages[1].role, Role::User);
        assert_eq!(some.messages.len(), 4);
    }

    #[test]
    fn too_long_even_alone() {
        let system = m(Role::System, 40);
        let err = fit(&system, vec![m(Role::User, 40_000)], 8192, 4096).unwrap_err();
        assert_eq!(err, TooLong { needed: 14 + 10_004, available: 4096 });
    }
}
