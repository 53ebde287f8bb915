//! A connection's byte stream, plain or TLS, over a nonblocking socket.
//!
//! Reads return plaintext (driving the TLS handshake as needed); writes go
//! through the connection's bounded [`OutBuf`], which [`Transport::flush`]
//! empties into the socket, through rustls when there is TLS. rustls keeps
//! at most its own buffer limit (64 KiB by default) on top of it, because
//! plaintext is only fed to it once its previous records have been sent.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use rustls::ServerConnection;

use crate::buf::OutBuf;

pub(crate) struct Transport {
    pub(crate) sock: TcpStream,
    pub(crate) tls: Option<Box<ServerConnection>>,
}

/// How far a flush got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything is written.
    All,
    /// The socket would block: wait for it to become writable.
    SocketFull,
    /// rustls holds the rest until its handshake completes, which the next
    /// read will advance.
    TlsPending,
}

impl Transport {
    pub(crate) fn new(sock: TcpStream, tls: Option<Box<ServerConnection>>) -> Self {
        Self { sock, tls }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A TLS connection whose handshake has not finished yet.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Reads plaintext into `buf`. `Ok(0)` is the end of the stream; an
    /// empty socket is `WouldBlock`. A TLS error is `InvalidData`; rustls
    /// may then have an alert to send, which a flush writes.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for us, the end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and discards whatever the peer still sends, bypassing TLS
    /// (for a connection that is closing). True once the peer is gone.
    pub(crate) fn discard(&mut self, scratch: &mut [u8]) -> bool {
        loop {
            match self.sock.read(scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Whether there is something to write (queued bytes, or TLS records
    /// such as handshake messages and alerts).
    pub(crate) fn wants_write(&self, out: &OutBuf) -> bool {
        !out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes as much of `out` as the socket takes.
    pub(crate) fn flush(&mut self, out: &mut OutBuf) -> io::Result<Flushed> {
        let Some(tls) = self.tls.as_mut() else {
            return write_plain(&mut self.sock, out);
        };
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Flushed::SocketFull)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if out.is_empty() {
                return Ok(Flushed::All);
            }
            let n = tls.writer().write(out.data())?;
            if n == 0 {
                return Ok(Flushed::TlsPending);
            }
            out.consume(n);
        }
    }

    /// Ends our side of the stream once everything is written: TLS
    /// close_notify (best effort), then a TCP half-close, so the peer reads
    /// the last answer before the end rather than a reset.
    pub(crate) fn shutdown_write(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

fn write_plain(sock: &mut TcpStream, out: &mut OutBuf) -> io::Result<Flushed> {
    while !out.is_empty() {
        match sock.write(out.data()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.consume(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::SocketFull),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flushed::All)
}

/// The stream tungstenite sees: reads come from the transport, writes go
/// to the connection's bounded queue (never blocking, so tungstenite never
/// holds a half-written frame of its own), flush is the worker's business.
pub(crate) struct WsIo<'a> {
    pub(crate) transport: &'a mut Transport,
    pub(crate) out: &'a mut OutBuf,
}

impl Read for WsIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.transport.read(buf)
    }
}

impl Write for WsIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.push(buf) {
            Ok(buf.len())
        } else {
            Err(io::Error::other("outgoing queue full"))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
