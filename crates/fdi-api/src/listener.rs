//! A TCP listener whose connections answer hyper's own parse-error responses (400 for a
//! malformed request line, 414 for a URI over 64 KB, 431 for oversized headers) with the FDI
//! error body instead of hyper's empty one.
//!
//! hyper writes those responses itself, before any service runs, with `content-length: 0` and
//! then closes the connection. Every response the router produces carries a body (the
//! [`crate::fdi_error_bodies`] middleware sees to it), so a bodiless 400/414/431 head on the
//! wire can only be hyper's: the connection rewrites exactly that write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use fdi_types::{ApiError, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// [`axum::serve`]'s listener: a [`TcpListener`] whose connections are [`FdiErrorIo`].
pub struct FdiListener(pub TcpListener);

impl axum::serve::Listener for FdiListener {
    type Io = FdiErrorIo<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (FdiErrorIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that swaps hyper's bodiless parse-error responses for FDI error bodies.
pub struct FdiErrorIo<T> {
    inner: T,
    /// A replacement being written: bytes, how many are written, the length of the original.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> FdiErrorIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

/// The FDI response for a head hyper wrote on its own, or `None` for any other bytes.
fn replacement_for(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let code = match rest.get(..3)? {
        "400" => ErrorCode::InvalidParameters,
        "414" => ErrorCode::UriTooLong,
        "431" => ErrorCode::HeadersTooLarge,
        _ => return None,
    };
    let headers: Vec<&str> = lines.collect();
    if !headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let reason = match code {
        ErrorCode::InvalidParameters => "request: malformed request line or headers",
        ErrorCode::UriTooLong => "request: the URI exceeds the 64 KB limit",
        _ => "request: the header section exceeds the server's limit",
    };
    let body = serde_json::to_vec(&ApiError::new(code, reason).body()).ok()?;
    let mut out = format!("{status_line}\r\ncontent-type: application/json\r\n");
    for h in headers {
        if !h.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    Some(bytes)
}

impl<T: AsyncRead + Unpin> AsyncRead for FdiErrorIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FdiErrorIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && buf.len() < 4096
            && let Some(bytes) = replacement_for(buf)
        {
            this.replacing = Some((bytes, 0, buf.len()));
        }
        let Some((bytes, written, original)) = this.replacing.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let original = *original;
        this.replacing = None;
        Poll::Ready(Ok(original))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parse_error_heads_are_replaced() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement_for(hyper_414).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("date: Tue"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error_code"], "FDI.3002");
        assert!(v["error_msg"].as_str().unwrap().contains("URI"));

        let app_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n";
        assert!(replacement_for(app_400).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_some()
        );
    }
}
