//! Server-sent events: bytes in, `data:` payloads out. Handles events split across network
//! chunks, `\r\n` line ends, comments and multi-line data.

#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Feeds bytes; returns the data payloads of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        loop {
            let text = &self.buffer;
            let end = find(text, b"\n\n").map(|i| (i, 2)).into_iter().chain(find(text, b"\r\n\r\n").map(|i| (i, 4))).min_by_key(|(i, _)| *i);
            let Some((at, sep)) = end else { break };
            let block = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
            self.buffer.drain(..at + sep);
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\n\n: comment\n\ndata: x\r\n\r\ndata: l1\ndata: l2\n\n"), vec!["{\"a\":1}", "x", "l1\nl2"]);
        assert_eq!(p.push(b"data: [DONE]\n\n"), vec!["[DONE]"]);
    }
}
