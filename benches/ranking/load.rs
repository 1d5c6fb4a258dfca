//! The load generator: HTTP/1.1 keep-alive connections on one thread, each sending request
//! bodies in turn, in a closed loop (the next request when the previous is answered: the
//! saturated throughput) or an open loop at a fixed total rate (latency at a given load).
//!
//! Written here rather than using `wrk`: `wrk` has no fixed-rate mode (`wrk2` is not packaged
//! here). In the open loop a pacer thread hands out the schedule's slots, evenly spaced, each
//! connection taking every C-th; a request whose slot passed while its connection was still
//! busy, or that reached its idle connection more than [`PACER_SLACK`] after its slot (the
//! pacer held up), counts its latency from the slot (what a client at that rate would have
//! waited: no coordinated omission), one sent on time from when it was sent. The report counts
//! the requests timed from their slot (`late`).
//!
//! The pacer is an OS thread sleeping to each slot (`std::thread::sleep`, a high-resolution
//! timer) rather than tokio's timer: tokio's wheel has millisecond ticks, so its sleeps end on
//! the next tick and slots close together leave in bursts — at 1,000 req/s, one send in ten
//! left within 0.2 ms of the previous one — which measures the bursts, not the even rate asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::percentile;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The endpoint, e.g. http://127.0.0.1:8080/v1/rank.
    #[arg(long)]
    url: String,
    /// Request bodies, one JSON object per line, sent in turn.
    #[arg(long)]
    bodies: PathBuf,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Requests per second in total (open loop); without it, a closed loop.
    #[arg(long)]
    rate: Option<f64>,
}

/// One answered request.
struct Sample {
    begin: Instant,
    /// Timed from its slot (see the module's comment).
    late: bool,
    done: Instant,
    ok: bool,
}

struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
}

fn target(url: &str) -> Result<Target> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("url {url:?}"))?;
    let authority = uri
        .authority()
        .context("the url has no host:port")?
        .to_string();
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("{authority} is not an ip:port"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok(Target {
        addr,
        authority,
        path,
    })
}

async fn connect(t: &Target) -> Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(t.addr)
        .await
        .with_context(|| format!("connecting to {}", t.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one body; `Ok(true)` for a 200 read to its end.
async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    t: &Target,
    body: Bytes,
) -> Result<bool> {
    sender.ready().await?;
    let req = hyper::Request::post(t.path.as_str())
        .header(hyper::header::HOST, t.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(req).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

/// How late after its slot an idle connection may get it and still count from its send: the
/// pacer's sleep ends up to the timer slack (50 µs by default) after the slot, and its wake-up
/// and the hand-over take some tens of microseconds more.
pub(crate) const PACER_SLACK: Duration = Duration::from_micros(200);

/// When a connection sends its next request.
enum Pace {
    /// As soon as the previous one is answered, until the end.
    Closed(Instant),
    /// At each slot the pacer sends (the channel closes at the end).
    Open(tokio::sync::mpsc::UnboundedReceiver<Instant>),
}

impl Pace {
    /// The next request's start for the latency and whether that is its slot (it is late),
    /// or `None` at the end.
    async fn next(&mut self) -> Option<(Instant, bool)> {
        match self {
            Self::Closed(end) => Some((Instant::now(), false)).filter(|(now, _)| now < end),
            Self::Open(slots) => match slots.try_recv() {
                // Its slot passed while the previous request was out: counted from the slot.
                Ok(late) => Some((late, true)),
                // Waited for its slot: counted from now, the send, unless the pacer was late.
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    let slot = slots.recv().await?;
                    let now = Instant::now();
                    Some(if now - slot > PACER_SLACK {
                        (slot, true)
                    } else {
                        (now, false)
                    })
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
            },
        }
    }
}

/// Sleeps to each slot from `start` to `end`, `gap` apart, and gives it to connection
/// `k % connections` (an OS thread: see the module's comment).
fn pace(
    start: Instant,
    end: Instant,
    gap: Duration,
    connections: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>,
) {
    for k in 0u32.. {
        let slot = start + gap * k;
        if slot >= end {
            break;
        }
        std::thread::sleep(slot.saturating_duration_since(Instant::now()));
        // Only a connection whose worker has ended is gone, and its error ends the run.
        let _ = connections[k as usize % connections.len()].send(slot);
    }
}

async fn worker(
    i: usize,
    n_workers: usize,
    t: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    mut pace: Pace,
) -> Result<(Vec<Sample>, usize)> {
    let mut sender = connect(&t).await?;
    let mut samples = Vec::new();
    let mut transport_errors = 0;
    for k in 0usize.. {
        let Some((begin, late)) = pace.next().await else {
            break;
        };
        let body = bodies[(i + k * n_workers) % bodies.len()].clone();
        match send(&mut sender, &t, body).await {
            Ok(ok) => samples.push(Sample {
                begin,
                late,
                done: Instant::now(),
                ok,
            }),
            Err(_) => {
                transport_errors += 1;
                samples.push(Sample {
                    begin,
                    late,
                    done: Instant::now(),
                    ok: false,
                });
                sender = connect(&t).await?;
            }
        }
    }
    Ok((samples, transport_errors))
}

pub fn run(args: &LoadArgs) -> Result<Value> {
    let t = Arc::new(target(&args.url)?);
    let text = std::fs::read_to_string(&args.bodies)
        .with_context(|| format!("reading {}", args.bodies.display()))?;
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Bytes::from(l.to_owned()))
            .collect(),
    );
    if bodies.is_empty() || args.connections == 0 {
        bail!("no bodies or no connections");
    }
    let c = args.connections;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let paces: Vec<Pace> = match args.rate {
        Some(rate) if rate > 0.0 => {
            let gap = Duration::from_secs_f64(1.0 / rate);
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..c)
                .map(|_| tokio::sync::mpsc::unbounded_channel())
                .unzip();
            std::thread::Builder::new()
                .name("pacer".to_owned())
                .spawn(move || pace(start, end, gap, senders))?;
            receivers.into_iter().map(Pace::Open).collect()
        }
        Some(rate) => bail!("rate {rate} is not positive"),
        None => (0..c).map(|_| Pace::Closed(end)).collect(),
    };
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, pace) in paces.into_iter().enumerate() {
            tasks.push(tokio::spawn(worker(i, c, t.clone(), bodies.clone(), pace)));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.context("a load worker")??);
        }
        anyhow::Ok(out)
    })?;

    let mut latencies_ms = Vec::new();
    let (mut ok, mut failed, mut transport) = (0usize, 0usize, 0usize);
    let mut completed_in_window = 0usize;
    let mut late = 0usize;
    for (samples, errors) in &results {
        transport += errors;
        for s in samples {
            if s.begin < measure_from {
                continue;
            }
            late += usize::from(s.late);
            if s.ok {
                ok += 1;
                latencies_ms.push((s.done - s.begin).as_secs_f64() * 1e3);
            } else {
                failed += 1;
            }
            if s.ok && s.done <= end {
                completed_in_window += 1;
            }
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let window = (end - measure_from).as_secs_f64();
    Ok(json!({
        "url": args.url,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "connections": c,
        "rate": args.rate,
        "duration_s": window,
        "ok": ok,
        "failed": failed,
        "transport_errors": transport,
        "late": late,
        "throughput_rps": completed_in_window as f64 / window,
        "latency_ms": {
            "p50": percentile(&latencies_ms, 50.0),
            "p90": percentile(&latencies_ms, 90.0),
            "p99": percentile(&latencies_ms, 99.0),
            "p999": percentile(&latencies_ms, 99.9),
            "max": latencies_ms.last().copied().unwrap_or(f64::NAN),
            "mean": latencies_ms.iter().sum::<f64>() / latencies_ms.len().max(1) as f64,
        },
    }))
}
