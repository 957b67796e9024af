//! Server-sent events: bytes in, `data:` payloads out. Handles events split across network
//! chunks, `\r\n` line ends, comments and multi-line data.

#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Feeds bytes; returns the data payloads of every event completed by them. Runs once per
    /// network chunk of every streamed answer, so complete events are read in place and the
    /// buffer is compacted once per call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some((at, sep)) = boundary(&self.buffer[start..]) {
            if let Some(data) = data_of(&self.buffer[start..start + at]) {
                events.push(data);
            }
            start += at + sep;
        }
        self.buffer.drain(..start);
        events
    }
}

/// Where the first event ends (a blank line, `\n\n` or `\r\n\r\n`) and the separator's length.
fn boundary(hay: &[u8]) -> Option<(usize, usize)> {
    let lf = find(hay, b"\n\n").map(|i| (i, 2));
    let crlf = find(hay, b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The event's `data:` lines joined by newlines; `None` for events without data (comments).
fn data_of(block: &[u8]) -> Option<String> {
    let mut data: Option<Vec<u8>> = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data:") else { continue };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match &mut data {
            Some(d) => {
                d.push(b'\n');
                d.extend_from_slice(value);
            }
            None => data = Some(value.to_vec()),
        }
    }
    data.map(|d| String::from_utf8(d).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
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
