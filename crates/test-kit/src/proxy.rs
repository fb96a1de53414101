//! A TCP proxy that can make connections go silently dead.
//!
//! A load balancer or NAT that forgets its connection table neither closes nor resets the
//! connections it was carrying: their packets just stop arriving. Both ends keep a socket
//! that looks open, and a client without its own timeouts waits on it for ever. Killing the
//! API server cannot show that (the kernel answers with FIN or RST), so end-to-end tests put
//! [`FaultyProxy`] between the operator and kube-apiserver and freeze the connections there.
//!
//! The proxy forwards bytes and never looks inside them, so TLS runs end to end through it;
//! [`kubeconfig_via`] points a kubeconfig at it (the serving certificate names `127.0.0.1`,
//! which the proxy listens on too).
//!
//! Frozen means: the proxy neither reads from nor writes to either socket again, and keeps
//! both open until it is dropped. The kernel still accepts what a peer sends into the
//! socket's buffer (and so answers TCP keep-alive probes); only an application-level
//! timeout or ping (HTTP/2 PING, a watch that should have had an event) notices the
//! silence, which is what a client must rely on behind real middleboxes too.
//!
//! The proxy runs on a thread of its own with its own tokio runtime: each `#[tokio::test]`
//! has a runtime that ends with the test, and a proxy must outlive none of them nor need
//! one to be running. Its controls are plain blocking calls that are usable from sync and
//! async code alike (they wait only for the proxy's thread to apply them).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc as tokio_mpsc, watch};

/// Connection counts of a [`FaultyProxy`].
///
/// Every accepted connection is in exactly one of the other four states, so
/// `accepted == forwarding + frozen + swallowed + closed` in every snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Connections accepted since the start.
    pub accepted: usize,
    /// Connections being forwarded now (including those still connecting upstream).
    pub forwarding: usize,
    /// Connections that were being forwarded and are now held silent.
    pub frozen: usize,
    /// Connections accepted while blackholed, held silent without an upstream connection.
    pub swallowed: usize,
    /// Connections that ended the ordinary way: both sides finished, an error, or the
    /// upstream refused.
    pub closed: usize,
}

impl ProxyStats {
    /// Connections held open silently, frozen or swallowed.
    pub fn held(&self) -> usize {
        self.frozen + self.swallowed
    }
}

/// A TCP proxy on `127.0.0.1` to one target, whose connections can be frozen.
///
/// Dropping it stops its thread and closes every socket it holds, frozen ones included.
pub struct FaultyProxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// `None` only while dropping: closing the channel is what stops the thread.
    commands: Option<tokio_mpsc::UnboundedSender<Command>>,
    registry: Arc<Mutex<Registry>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = StdListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (commands, receiver) = tokio_mpsc::unbounded_channel();
        let (started, start_result) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("faulty-proxy-{}", addr.port()))
            .spawn({
                let registry = Arc::clone(&registry);
                move || run(listener, target, registry, receiver, &started)
            })?;
        start_result
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("proxy thread died while starting")))?;
        Ok(Self {
            addr,
            target,
            commands: Some(commands),
            registry,
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Freezes every connection open now, for the proxy's whole life, and returns how many.
    ///
    /// "Open" is what the client sees: a connection whose handshake the kernel completed
    /// but the proxy had not yet taken from its accept queue is frozen too. When this
    /// returns, no byte moves on a frozen connection any more, in either direction.
    /// Connections accepted afterwards are forwarded as before (unless blackholed).
    pub fn freeze_open(&self) -> usize {
        self.command(Action::FreezeOpen)
    }

    /// Makes the target unreachable while TCP still connects: freezes every open
    /// connection (returns how many), and holds every new one silently without connecting
    /// upstream, until [`Self::restore`].
    pub fn blackhole(&self) -> usize {
        self.command(Action::Blackhole)
    }

    /// New connections are forwarded again. Connections frozen or swallowed before stay
    /// silent: a path that went dead does not come back.
    pub fn restore(&self) {
        self.command(Action::Restore);
    }

    pub fn stats(&self) -> ProxyStats {
        self.registry.lock().expect("proxy registry lock").stats
    }

    /// Sends `action` to the proxy's thread and waits until it is applied.
    fn command(&self, action: Action) -> usize {
        let (reply, answer) = mpsc::channel();
        self.commands
            .as_ref()
            .expect("proxy not dropped")
            .send(Command { action, reply })
            .expect("proxy thread running");
        answer.recv().expect("proxy thread answers")
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FaultyProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultyProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Writes a copy of `kubeconfig` whose `server:` values point at `proxy` instead.
///
/// Only the address changes: scheme, credentials and CA stay, so TLS is still verified
/// against the real API server's certificate (valid for `127.0.0.1`, where the proxy
/// listens). Fails if the file has no `server:` line, since a copy that still points at
/// the API server directly would make a test pass for the wrong reason.
pub fn kubeconfig_via(kubeconfig: &Path, proxy: SocketAddr, out: &Path) -> io::Result<()> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let mut replaced = 0;
    let mut copy = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let ending = &line[content.len()..];
        let Some((key, value)) = content.split_once("server:") else {
            copy.push_str(line);
            continue;
        };
        // Only the key itself, indented or as a list item: not `tls-server-name:`, nor a
        // `server:` inside some other value.
        if !key.trim_start_matches([' ', '-']).is_empty() {
            copy.push_str(line);
            continue;
        }
        let value = value.trim().trim_matches(['"', '\'']);
        let scheme = value
            .split_once("://")
            .map_or("https", |(scheme, _)| scheme);
        copy.push_str(&format!("{key}server: {scheme}://{proxy}{ending}"));
        replaced += 1;
    }
    if replaced == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has no `server:` line", kubeconfig.display()),
        ));
    }
    std::fs::write(out, copy)
}

/// What a control call asks of the proxy's thread; answered with a count of connections.
struct Command {
    action: Action,
    reply: mpsc::Sender<usize>,
}

#[derive(Clone, Copy)]
enum Action {
    FreezeOpen,
    Blackhole,
    Restore,
}

/// What happens to a connection when it is accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Blackhole,
}

/// Shared between the proxy's thread (which alone changes it) and [`FaultyProxy::stats`].
#[derive(Default)]
struct Registry {
    next_id: u64,
    /// The connections being forwarded, with the switch that freezes each. Whoever removes
    /// an entry decides the connection's fate: the freeze, or the connection ending itself.
    forwarding: HashMap<u64, watch::Sender<bool>>,
    stats: ProxyStats,
}

/// The proxy's thread: a runtime of its own, the accept loop, and at the end the runtime's
/// drop, which closes every socket still held by a connection task.
fn run(
    listener: StdListener,
    target: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    commands: tokio_mpsc::UnboundedReceiver<Command>,
    started: &mpsc::Sender<io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    runtime.block_on(async {
        // A second handle on the same socket, to empty the accept queue synchronously:
        // tokio's accept only tries once the reactor has seen the socket become readable.
        let queue = match listener.try_clone() {
            Ok(queue) => queue,
            Err(error) => {
                let _ = started.send(Err(error));
                return;
            }
        };
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = started.send(Err(error));
                return;
            }
        };
        let _ = started.send(Ok(()));
        let mut proxy = Proxy {
            target,
            registry,
            mode: Mode::Forward,
            swallowed: Vec::new(),
        };
        proxy.serve(&listener, &queue, commands).await;
    });
    // Dropping the runtime drops every connection task, and with them their sockets.
    drop(runtime);
}

/// State of the accept loop.
struct Proxy {
    target: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    mode: Mode,
    /// Connections accepted while blackholed, kept open and never touched.
    swallowed: Vec<TcpStream>,
}

impl Proxy {
    async fn serve(
        &mut self,
        listener: &TcpListener,
        queue: &StdListener,
        mut commands: tokio_mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    // Connections the client already sees as open belong to the world
                    // before this command: take them in under the mode they arrived in.
                    self.drain(queue);
                    let count = self.apply(command.action);
                    let _ = command.reply.send(count);
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => self.accepted(stream),
                    Err(error) => eprintln!("faulty proxy to {}: accept failed: {error}", self.target),
                },
            }
        }
    }

    /// Takes every connection waiting in the kernel's accept queue.
    fn drain(&mut self, queue: &StdListener) {
        loop {
            let stream = match queue.accept() {
                Ok((stream, _peer)) => stream,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    eprintln!("faulty proxy to {}: accept failed: {error}", self.target);
                    return;
                }
            };
            match stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream))
            {
                Ok(stream) => self.accepted(stream),
                Err(error) => eprintln!(
                    "faulty proxy to {}: taking an accepted connection failed: {error}",
                    self.target
                ),
            }
        }
    }

    fn apply(&mut self, action: Action) -> usize {
        match action {
            Action::FreezeOpen => self.freeze_open(),
            Action::Blackhole => {
                self.mode = Mode::Blackhole;
                self.freeze_open()
            }
            Action::Restore => {
                self.mode = Mode::Forward;
                0
            }
        }
    }

    /// Flips every forwarding connection's switch. The connection tasks run on this same
    /// single thread and check their switch before each read and write, so none of them
    /// moves another byte once this returns.
    fn freeze_open(&mut self) -> usize {
        let mut registry = self.registry.lock().expect("proxy registry lock");
        let switches: Vec<_> = registry.forwarding.drain().map(|(_, s)| s).collect();
        let count = switches.len();
        for switch in switches {
            let _ = switch.send(true);
        }
        registry.stats.forwarding = 0;
        registry.stats.frozen += count;
        count
    }

    fn accepted(&mut self, client: TcpStream) {
        let mut registry = self.registry.lock().expect("proxy registry lock");
        registry.stats.accepted += 1;
        match self.mode {
            Mode::Blackhole => {
                registry.stats.swallowed += 1;
                self.swallowed.push(client);
            }
            Mode::Forward => {
                let id = registry.next_id;
                registry.next_id += 1;
                let (switch, frozen) = watch::channel(false);
                registry.forwarding.insert(id, switch);
                registry.stats.forwarding += 1;
                tokio::spawn(connection(
                    id,
                    client,
                    self.target,
                    frozen,
                    Arc::clone(&self.registry),
                ));
            }
        }
    }
}

/// How one direction of a connection stopped, when not by an error.
#[derive(PartialEq, Eq)]
enum Pumped {
    /// The source sent FIN and the destination was shut down for writing.
    Finished,
    Frozen,
}

/// Forwards one connection until it ends or is frozen; frozen, it keeps both sockets and
/// waits for the runtime to be dropped.
async fn connection(
    id: u64,
    mut client: TcpStream,
    target: SocketAddr,
    frozen: watch::Receiver<bool>,
    registry: Arc<Mutex<Registry>>,
) {
    let mut connect_switch = frozen.clone();
    let upstream = tokio::select! {
        biased;
        _ = connect_switch.wait_for(|frozen| *frozen) => None,
        upstream = TcpStream::connect(target) => upstream.ok(),
    };
    let mut upstream = upstream;
    if let Some(upstream) = &mut upstream {
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        // An error in one direction ends both, as closing the sockets is all a proxy can
        // do about it.
        let _ = tokio::try_join!(
            pump(&mut client_read, &mut upstream_write, frozen.clone()),
            pump(&mut upstream_read, &mut client_write, frozen.clone()),
        );
    }
    let ended = {
        let mut registry = registry.lock().expect("proxy registry lock");
        let ended = registry.forwarding.remove(&id).is_some();
        if ended {
            registry.stats.forwarding -= 1;
            registry.stats.closed += 1;
        }
        ended
    };
    if !ended {
        // Frozen: hold the sockets, touch them never again.
        std::future::pending::<()>().await;
    }
    drop((client, upstream));
}

/// Copies `from` to `to` until EOF (then shuts `to` down for writing, passing the
/// half-close on), an error, or the freeze, which wins whenever it has happened.
///
/// A switch that was dropped counts as flipped: only the freeze takes it out of the
/// registry while the connection still runs.
async fn pump(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    mut frozen: watch::Receiver<bool>,
) -> io::Result<Pumped> {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            biased;
            _ = frozen.wait_for(|frozen| *frozen) => return Ok(Pumped::Frozen),
            read = from.read(&mut buffer) => read?,
        };
        if read == 0 {
            tokio::select! {
                biased;
                _ = frozen.wait_for(|frozen| *frozen) => return Ok(Pumped::Frozen),
                shutdown = to.shutdown() => shutdown?,
            }
            return Ok(Pumped::Finished);
        }
        tokio::select! {
            biased;
            _ = frozen.wait_for(|frozen| *frozen) => return Ok(Pumped::Frozen),
            written = to.write_all(&buffer[..read]) => written?,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// How long a connection must stay without any answer to count as silent.
    const SILENCE: Duration = Duration::from_millis(800);

    /// How long an answer that should come may take.
    const PROMPT: Duration = Duration::from_secs(2);

    /// An echo server on the test's runtime; counts the connections it accepted.
    async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.expect("echo accept");
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => {
                                if stream.write_all(&buffer[..read]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, connections)
    }

    /// Sends `message` and expects it back within [`PROMPT`].
    async fn assert_echoes(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).await.expect("write");
        let mut answer = vec![0; message.len()];
        tokio::time::timeout(PROMPT, stream.read_exact(&mut answer))
            .await
            .expect("echo within the deadline")
            .expect("reading the echo");
        assert_eq!(answer, message);
    }

    /// Sends a byte (the kernel takes it whatever happens behind) and expects neither data
    /// nor EOF nor an error for [`SILENCE`].
    async fn assert_silent(stream: &mut TcpStream) {
        stream
            .write_all(b"anyone?")
            .await
            .expect("write to a silent connection");
        let mut buffer = [0; 64];
        match tokio::time::timeout(SILENCE, stream.read(&mut buffer)).await {
            Err(_elapsed) => {}
            Ok(Ok(0)) => panic!("silent connection was closed (EOF)"),
            Ok(Ok(read)) => panic!("silent connection answered {:?}", &buffer[..read]),
            Ok(Err(error)) => panic!("silent connection failed: {error}"),
        }
    }

    /// Polls until `stats` holds, since the proxy accepts on its own thread.
    async fn wait_for_stats(proxy: &FaultyProxy, expected: ProxyStats) {
        let deadline = Instant::now() + PROMPT;
        loop {
            let stats = proxy.stats();
            if stats == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stats {stats:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn connect(proxy: &FaultyProxy) -> TcpStream {
        TcpStream::connect(proxy.addr())
            .await
            .expect("connect to the proxy")
    }

    #[tokio::test]
    async fn forwards_both_ways_and_passes_half_close_on() {
        let (echo, _) = echo_server().await;
        let proxy = FaultyProxy::start(echo).expect("start proxy");
        let mut stream = connect(&proxy).await;
        assert_echoes(&mut stream, b"hello").await;
        let large = vec![7; 256 * 1024];
        let (mut read, mut write) = stream.split();
        let mut answer = Vec::new();
        let (written, echoed) = tokio::join!(
            async {
                write.write_all(&large).await?;
                write.shutdown().await
            },
            tokio::time::timeout(PROMPT, read.read_to_end(&mut answer)),
        );
        written.expect("writing and half-closing");
        echoed
            .expect("echo and EOF within the deadline")
            .expect("reading to EOF");
        assert_eq!(answer, large);
        wait_for_stats(
            &proxy,
            ProxyStats {
                accepted: 1,
                closed: 1,
                ..ProxyStats::default()
            },
        )
        .await;
    }

    #[tokio::test]
    async fn frozen_connections_stay_open_and_silent_while_new_ones_work() {
        let (echo, _) = echo_server().await;
        let proxy = FaultyProxy::start(echo).expect("start proxy");
        let mut old = connect(&proxy).await;
        assert_echoes(&mut old, b"before").await;
        // Still in the accept queue or just taken from it: open for the client all the same.
        let mut queued = connect(&proxy).await;

        assert_eq!(proxy.freeze_open(), 2);
        let mut new = connect(&proxy).await;
        assert_echoes(&mut new, b"after").await;
        tokio::join!(assert_silent(&mut old), assert_silent(&mut queued));
        assert_echoes(&mut new, b"still").await;
        assert_eq!(
            proxy.stats(),
            ProxyStats {
                accepted: 3,
                forwarding: 1,
                frozen: 2,
                ..ProxyStats::default()
            }
        );
    }

    #[tokio::test]
    async fn blackhole_swallows_new_connections_until_restored() {
        let (echo, upstream_connections) = echo_server().await;
        let proxy = FaultyProxy::start(echo).expect("start proxy");
        let mut frozen = connect(&proxy).await;
        assert_echoes(&mut frozen, b"before").await;

        assert_eq!(proxy.blackhole(), 1);
        let mut swallowed = connect(&proxy).await;
        swallowed.write_all(b"hello?").await.expect("write");
        wait_for_stats(
            &proxy,
            ProxyStats {
                accepted: 2,
                frozen: 1,
                swallowed: 1,
                ..ProxyStats::default()
            },
        )
        .await;

        proxy.restore();
        let mut restored = connect(&proxy).await;
        assert_echoes(&mut restored, b"back").await;
        tokio::join!(assert_silent(&mut frozen), assert_silent(&mut swallowed));
        assert_eq!(
            upstream_connections.load(Ordering::SeqCst),
            2,
            "a swallowed connection must not reach the target"
        );
        let stats = proxy.stats();
        assert_eq!(
            stats,
            ProxyStats {
                accepted: 3,
                forwarding: 1,
                frozen: 1,
                swallowed: 1,
                closed: 0,
            }
        );
        assert_eq!(stats.held(), 2);
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_held_connections() {
        let (echo, _) = echo_server().await;
        let proxy = FaultyProxy::start(echo).expect("start proxy");
        let mut frozen = connect(&proxy).await;
        assert_echoes(&mut frozen, b"before").await;
        assert_eq!(proxy.blackhole(), 1);
        let mut swallowed = connect(&proxy).await;
        wait_for_stats(
            &proxy,
            ProxyStats {
                accepted: 2,
                frozen: 1,
                swallowed: 1,
                ..ProxyStats::default()
            },
        )
        .await;

        drop(proxy);
        for stream in [&mut frozen, &mut swallowed] {
            let mut buffer = [0; 16];
            let read = tokio::time::timeout(PROMPT, stream.read(&mut buffer))
                .await
                .expect("closed promptly");
            // EOF, or a reset where the proxy's socket had unread bytes.
            assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");
        }
    }

    #[tokio::test]
    async fn refused_upstream_closes_the_client() {
        let free = StdListener::bind("127.0.0.1:0").expect("bind");
        let target = free.local_addr().expect("address");
        drop(free);
        let proxy = FaultyProxy::start(target).expect("start proxy");
        let mut stream = connect(&proxy).await;
        let mut buffer = [0; 16];
        let read = tokio::time::timeout(PROMPT, stream.read(&mut buffer))
            .await
            .expect("closed promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");
        wait_for_stats(
            &proxy,
            ProxyStats {
                accepted: 1,
                closed: 1,
                ..ProxyStats::default()
            },
        )
        .await;
    }

    #[test]
    fn kubeconfig_points_at_the_proxy() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let original = dir.path().join("kubeconfig");
        let copy = dir.path().join("kubeconfig-via-proxy");
        std::fs::write(
            &original,
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: local\n  cluster:\n    server: https://127.0.0.1:6443\n    \
             certificate-authority: /tmp/ca.crt\n    tls-server-name: server:x\n\
             users:\n\
             - name: admin\n  user:\n    token: admin-1\n\
             current-context: local\n",
        )
        .expect("write kubeconfig");
        let proxy: SocketAddr = "127.0.0.1:40123".parse().expect("address");
        kubeconfig_via(&original, proxy, &copy).expect("rewrite");
        let rewritten = std::fs::read_to_string(&copy).expect("read copy");
        assert_eq!(
            rewritten,
            std::fs::read_to_string(&original)
                .expect("read original")
                .replace("127.0.0.1:6443", "127.0.0.1:40123")
        );

        std::fs::write(&original, "apiVersion: v1\nkind: Config\n").expect("write");
        let error = kubeconfig_via(&original, proxy, &copy).expect_err("no server line");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn usable_without_a_runtime() {
        let echo = StdListener::bind("127.0.0.1:0").expect("bind");
        let proxy = FaultyProxy::start(echo.local_addr().expect("address")).expect("start");
        let _client = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        let (_upstream, _) = echo.accept().expect("proxy connects upstream");
        assert_eq!(proxy.freeze_open(), 1);
        assert_eq!(proxy.stats().frozen, 1);
    }
}
