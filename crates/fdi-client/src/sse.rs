//! A Server-Sent Events parser (the WHATWG event-stream format) fed with byte chunks as they
//! arrive: lines end with LF, CRLF or CR; `event`, `data` and `id` fields; comments (`:`) and
//! other fields ignored; an event is dispatched at a blank line.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the stream named none.
    pub event: String,
    /// The data lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

/// Collects bytes into lines and lines into events.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it ends the same line.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.pending);
                    if let Some(e) = self.line(&String::from_utf8_lossy(&line)) {
                        events.push(e);
                    }
                }
                _ => self.pending.push(b),
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }

    /// A blank line: the event so far, if it has data (the format drops events without data).
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".into()),
            data,
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(str::to_string),
        }
    }

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::new();
        assert!(p.feed(b"id: 1\nevent: prog").is_empty());
        assert_eq!(
            p.feed(b"ress\ndata: {\"a\":1}\n\nid: 2\r\nevent: end\r\ndata: {}\r\n\r\n"),
            vec![
                ev("progress", "{\"a\":1}", Some("1")),
                ev("end", "{}", Some("2"))
            ]
        );
    }

    #[test]
    fn comments_multi_line_data_and_lone_cr() {
        let mut p = SseParser::new();
        let got = p.feed(b": keep-alive\n\ndata:a\rdata: b\r\rdata\n\n");
        assert_eq!(
            got,
            vec![ev("message", "a\nb", None), ev("message", "", None)]
        );
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: x\r").is_empty());
        assert!(
            p.feed(b"\n").is_empty(),
            "the LF ends the CR's line, no blank line"
        );
        assert_eq!(p.feed(b"\n"), vec![ev("message", "x", None)]);
    }
}
