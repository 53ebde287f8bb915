//! What the HTTP and WebSocket loads share: a nonblocking TCP connection
//! that may carry TLS ([`Link`]), the TLS client settings, and the event
//! loop that keeps a worker's connections open and busy ([`driver`]).

pub mod driver;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;

use anyhow::Context;
use mio::net::TcpStream;
use mio::Poll;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::report::Protocol;
use crate::run::{supervise, Live, Outcome, RunOptions, Shared, Target, Window};
use driver::{Driver, Session};

/// How a TCP load is laid out, whatever its protocol.
pub struct TcpLoad {
    pub protocol: Protocol,
    pub tracker: SocketAddr,
    pub tls: bool,
    pub workers: usize,
    /// Over all workers, spread as evenly as they go.
    pub connections: usize,
    pub window: Window,
    /// Seconds measured, for the report's rates.
    pub duration: f64,
}

impl TcpLoad {
    /// Connections of worker `w`.
    pub fn connections_of(&self, w: usize) -> usize {
        self.connections / self.workers + usize::from(w < self.connections % self.workers)
    }
}

/// Runs `load` with one [`Driver`] thread per worker, each speaking the
/// session `session(w)` makes, and reports what they counted.
pub fn run<S>(
    load: &TcpLoad,
    options: &RunOptions,
    mut session: impl FnMut(usize) -> S,
) -> anyhow::Result<Outcome>
where
    S: Session + Send + 'static,
    S::Conn: Send,
{
    let shared = Shared::new();
    let dialer = Dialer::new(load.tracker, load.tls);
    let mut handles = Vec::with_capacity(load.workers);
    let mut lives = Vec::with_capacity(load.workers);
    let mut first_slot = 0;
    for w in 0..load.workers {
        let slots = load.connections_of(w);
        let live = Arc::new(Live::default());
        let driver = Driver::new(
            session(w),
            dialer.clone(),
            Poll::new().context("creating a mio poll")?,
            first_slot as u32..(first_slot + slots) as u32,
            load.window,
            shared.clone(),
            live.clone(),
        );
        // Thread names show in /proc; Linux keeps 15 bytes of them.
        let name = match load.protocol {
            Protocol::Udp => format!("udp-load-{w}"),
            Protocol::Http => format!("http-load-{w}"),
            Protocol::Ws => format!("ws-load-{w}"),
        };
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || driver.run())
            .context("starting a worker thread")?;
        handles.push(handle);
        lives.push(live);
        first_slot += slots;
    }
    supervise(
        &shared,
        &lives,
        handles,
        load.window,
        options,
        &Target {
            protocol: load.protocol,
            tracker: load.tracker,
            duration: load.duration,
        },
    )
}

/// A connected TCP stream, plain or TLS, that never blocks.
///
/// Bytes to send are queued whole ([`Link::queue`]) and go out as the
/// socket takes them ([`Link::flush`]); with TLS, rustls holds them, and
/// before the handshake is done it keeps them until it is. Reads return
/// plaintext, `Ok(0)` at the end of the stream, and `WouldBlock` when the
/// socket has nothing more. As `Read + Write` it can carry tungstenite:
/// `write` always takes everything, `flush` says `WouldBlock` until the
/// queue is out.
pub struct Link {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
    /// Plain only: queued bytes the socket has not taken yet, from
    /// `out_start` on.
    out: Vec<u8>,
    out_start: usize,
    /// A write error met while queueing, reported by the next flush.
    error: Option<io::Error>,
    /// Plain only: the last read came back short of the buffer, so the
    /// socket is empty, and reads say `WouldBlock` without a system call
    /// until [`Link::rearm`]. Edge-triggered epoll reports every arrival
    /// anew, so nothing is missed; it saves a read per event, a third of
    /// the system calls of a request.
    drained: bool,
}

impl Link {
    pub fn new(sock: TcpStream, tls: Option<ClientConnection>) -> Self {
        Self {
            sock,
            tls: tls.map(Box::new),
            out: Vec::new(),
            out_start: 0,
            error: None,
            drained: false,
        }
    }

    /// Called on a readiness event: the socket may have data again.
    pub fn rearm(&mut self) {
        self.drained = false;
    }

    /// Queues `bytes` to be sent, trying to send them at once. Never
    /// blocks, never refuses: the callers bound what they queue by their
    /// requests in flight.
    pub fn queue(&mut self, bytes: &[u8]) {
        if let Some(tls) = &mut self.tls {
            // Without a buffer limit (see `Dialer::link`) rustls takes all.
            if let Err(e) = tls.writer().write_all(bytes) {
                self.error.get_or_insert(e);
            }
            return;
        }
        let mut rest = bytes;
        if self.out_start == self.out.len() {
            // Nothing queued ahead: straight to the socket, no copy.
            match self.sock.write(bytes) {
                Ok(n) => rest = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.error.get_or_insert(e);
                    return;
                }
            }
        }
        self.out.extend_from_slice(rest);
    }

    /// Acknowledges what was received right away instead of after the
    /// kernel's delayed-ACK timeout (40 ms). The kernel clears this again
    /// as it sees fit, so it is set after every read. It matters against
    /// trackers that leave Nagle's algorithm on (aquatic_ws and
    /// aquatic_http do): their next message waits for our ACK, and a
    /// client that has nothing to send back would hold it 40 ms.
    pub fn quickack(&self) {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the size passed.
        // Failure only means delayed ACKs, so the result is ignored.
        unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// Sends what the socket takes of the queue. `Ok(true)` when all is
    /// out, `Ok(false)` when the socket is full (a writable event follows).
    pub fn flush(&mut self) -> io::Result<bool> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(tls) = &mut self.tls {
            return flush_tls(tls, &mut self.sock);
        }
        while self.out_start < self.out.len() {
            match self.sock.write(&self.out[self.out_start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_start = 0;
        Ok(true)
    }
}

/// Writes what rustls has for the socket until it has nothing or the
/// socket is full.
fn flush_tls(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            if self.drained {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.sock.read(buf)?;
            self.drained = n > 0 && n < buf.len();
            return Ok(n);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: still an end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // No plaintext buffered: decrypt more (WouldBlock ends here).
            if tls.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued, then give up.
                let _ = flush_tls(tls, &mut self.sock);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake messages and the like want out now; a full socket
            // is fine, the next flush sends them.
            if let Err(e) = flush_tls(tls, &mut self.sock) {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.queue(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match Link::flush(self)? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Opens connections to the tracker, with TLS when asked.
#[derive(Clone)]
pub struct Dialer {
    pub addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
}

impl Dialer {
    pub fn new(addr: SocketAddr, tls: bool) -> Self {
        Self {
            addr,
            tls: tls.then(accept_any_certificate),
        }
    }

    /// Starts a nonblocking connect; it completes when the socket turns
    /// writable.
    pub fn connect(&self) -> io::Result<TcpStream> {
        let sock = TcpStream::connect(self.addr)?;
        // Requests are small and each waits for its answer: Nagle's
        // algorithm would hold them back for the previous ACK.
        sock.set_nodelay(true)?;
        Ok(sock)
    }

    /// Wraps a connected socket, starting the TLS handshake if any.
    pub fn link(&self, sock: TcpStream) -> io::Result<Link> {
        let tls = match &self.tls {
            Some(config) => {
                // An IP address as the name: rustls sends no SNI then, and
                // the verifier does not look at names anyway.
                let name = ServerName::IpAddress(self.addr.ip().into());
                let mut conn = ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                // Bounded by the requests in flight instead; see Link::queue.
                conn.set_buffer_limit(None);
                Some(conn)
            }
            None => None,
        };
        Ok(Link::new(sock, tls))
    }
}

/// TLS client settings that accept any certificate, so trackers under test
/// can use self-signed ones. For benchmarking only: this is no protection
/// against anyone in the middle. Handshake signatures are still checked,
/// so the connection is real TLS with the certificate's key.
fn accept_any_certificate() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions: unreachable.
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
