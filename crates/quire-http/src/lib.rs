//! How Quire's servers (ranking, live, registry) serve HTTP ([`serve`]): an axum [`Router`] on a
//! bound listener, as `axum::serve(..).with_graceful_shutdown(..)` does, plus two limits it lacks.
//!
//! - **A deadline on a request's head** ([`Limits::header_read`]): a connection that does not
//!   send a complete request line and headers in time — from its opening, or from the end of
//!   the previous answer on a keep-alive connection — is closed (hyper's `header_read_timeout`,
//!   which needs a timer that `axum::serve` does not install). A client that connects and says
//!   nothing, or stalls in its headers, no longer holds a connection (its task and file
//!   descriptor) for ever.
//! - **A deadline between a body's arrivals** ([`Limits::body_idle`]): a request whose body
//!   sends nothing for that long fails to read (its handler answers as for a broken-off body)
//!   and the connection is closed, as nginx's `client_body_timeout` does. A deadline on the
//!   whole body would cut off a large upload on a slow link (the registry's artifacts); this
//!   one only cuts off a client that stopped sending.
//! - **A bounded drain** ([`Limits::drain`]): at shutdown, no new connection is accepted, idle
//!   ones are closed and requests in flight finish; connections still open when the drain time
//!   is over are closed (their tasks aborted), and [`serve`] returns, so a stop never waits on a
//!   client and nothing runs after it.
//!
//! HTTP/1.1 only (every client of these servers speaks it): hyper-util's automatic HTTP/1–2
//! detection reads the connection's first bytes with no deadline, before hyper's timer starts.
//! Written here rather than taken whole from a crate: axum's `serve` has no option for any of
//! these limits; what is left is the accept loop below and the body wrapper [`IdleBody`]
//! (tower-http's `TimeoutBody` is the same idea, but its `timeout` feature would rebuild
//! reqwest and with it Polars, for about 40 lines).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower::ServiceExt;
use tracing::{debug, warn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client may take, and how long a stop may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most time to read a request's line and headers, counted from when the server starts
    /// reading them (on a keep-alive connection: from the end of the previous answer, so it
    /// also bounds the idle time between requests). Default: [`DEFAULT_HEADER_READ`].
    pub header_read: Duration,
    /// Most time a request's body may send nothing while its handler reads it: from when a
    /// read finds no data. Default: [`DEFAULT_BODY_IDLE`].
    pub body_idle: Duration,
    /// Most time a shutdown waits for the requests in flight. Default: [`DEFAULT_DRAIN`].
    pub drain: Duration,
}

/// 75 s: nginx's keep-alive timeout, longer than the idle time of most clients' connection
/// pools, so a pooled connection is closed by its client first, not between a client's reuse
/// and the server's close.
pub const DEFAULT_HEADER_READ: Duration = Duration::from_secs(75);

/// 60 s: nginx's `client_body_timeout`.
pub const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(60);

/// 20 s: inside the 30 s a container orchestrator gives a stopping process before killing it.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: DEFAULT_HEADER_READ,
            body_idle: DEFAULT_BODY_IDLE,
            drain: DEFAULT_DRAIN,
        }
    }
}

/// [`serve_with`] the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, router, shutdown, Limits::default()).await;
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module's
/// comment) and returns. Accepted connections get `TCP_NODELAY` (answers are small single
/// writes: sent at once, with no Nagle delay).
///
/// An error accepting a connection is logged and does not end the loop: a connection reset
/// before it was accepted is skipped, any other error (such as too many open files) is retried
/// after a second, as `axum::serve` does.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) {
    let idle = limits.body_idle;
    let service = TowerToHyperService::new(
        router.map_request(move |req: Request<Incoming>| req.map(|body| IdleBody::new(body, idle))),
    );
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    // Sent once at shutdown: each connection finishes its request in flight and closes.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections leave the set as they end.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => {
                debug!(error = %e, "a connection failed before it was accepted");
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot accept connections; trying again in a second");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = builder.serve_connection(TokioIo::new(stream), service.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(e) = served {
                            debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain, drained).await.is_err() {
        warn!(
            open = connections.len(),
            drain_seconds = limits.drain.as_secs_f64(),
            "connections still open after the drain time: closed"
        );
        connections.shutdown().await;
    }
}

/// A request body that fails when no data arrives for `idle` (see [`Limits::body_idle`]) while
/// its reader waits for it: the time counts from when a read finds nothing yet, so a handler
/// that reads late is not cut off, and a body that arrives with its head costs no timer.
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> IdleBody<B> {
    /// `inner`, cut off after `idle` without data while it is read.
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: None,
        }
    }
}

/// What an [`IdleBody`] fails with.
#[derive(Debug)]
pub struct BodyIdle(pub Duration);

impl fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no data for {} s in the middle of the request body",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyIdle {}

impl<B> Body for IdleBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyIdle(idle).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Errors of one connection that failed between the peer's connect and our accept.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn echo(body: String) -> String {
        body
    }

    /// A server with `limits` on a free port, stopped by the returned sender; its task.
    async fn start(
        limits: Limits,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().route("/echo", post(echo));
        let task = tokio::spawn(serve_with(
            listener,
            router,
            async move {
                let _ = rx.await;
            },
            limits,
        ));
        (addr, tx, task)
    }

    /// A connection that sent a request announcing 100 bytes of body and only 13 of them.
    async fn stalled_body(addr: std::net::SocketAddr) -> TcpStream {
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly 13 bytes",
            )
            .await
            .unwrap();
        stalled
    }

    /// What the server sends until it closes the connection (within 10 s).
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn answers_requests_and_keeps_the_connection() {
        let (addr, stop, task) = start(Limits::default()).await;
        let client = reqwest::Client::new();
        for text in ["a", "bc"] {
            let got = client
                .post(format!("http://{addr}/echo"))
                .body(text)
                .send()
                .await
                .unwrap();
            assert_eq!(got.status(), 200);
            assert_eq!(got.text().await.unwrap(), text);
        }
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    /// A client that connects and sends nothing, and one that stalls in its headers.
    #[tokio::test]
    async fn a_silent_or_stalled_client_is_disconnected() {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, stop, task) = start(limits).await;
        for sent in [&b""[..], b"POST /echo HTTP/1.1\r\nHost: x\r\n"] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(sent).await.unwrap();
            let started = Instant::now();
            let mut rest = Vec::new();
            // The server closes the connection (after an error answer, or none).
            tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
                .await
                .expect("the server closes the connection")
                .unwrap();
            assert!(started.elapsed() >= Duration::from_millis(250));
        }
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    /// A body that stops arriving fails to read after `body_idle` (the handler answers 400) and
    /// the connection closes; one that keeps arriving, however slowly, is read whole.
    #[tokio::test]
    async fn a_body_that_stops_arriving_is_cut_off() {
        let limits = Limits {
            body_idle: Duration::from_millis(1500),
            ..Limits::default()
        };
        let (addr, stop, task) = start(limits).await;
        let mut stalled = stalled_body(addr).await;
        let started = Instant::now();
        let answer = until_closed(&mut stalled).await;
        assert!(started.elapsed() >= Duration::from_millis(1400));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

        // Ten bytes 200 ms apart: never 1.5 s without data, but 2 s in all.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        for byte in b"abcdefghij" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            slow.write_all(&[*byte]).await.unwrap();
        }
        let mut answer = Vec::new();
        slow.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("abcdefghij"), "{answer}");
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_stop_waits_for_a_stalled_body_only_as_long_as_the_drain() {
        let limits = Limits {
            drain: Duration::from_millis(500),
            ..Limits::default()
        };
        let (addr, stop, task) = start(limits).await;
        let mut stalled = stalled_body(addr).await;
        // Let the server take the request in before the stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the stop ends after the drain time")
            .unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        // Its connection is closed, not left running after the stop.
        until_closed(&mut stalled).await;
    }

    #[tokio::test]
    async fn a_stop_lets_a_request_in_flight_finish() {
        let (addr, stop, task) = start(Limits::default()).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow.write_all(b"cde").await.unwrap();
        let mut answer = Vec::new();
        slow.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("abcde"), "{answer}");
        task.await.unwrap();
    }
}
