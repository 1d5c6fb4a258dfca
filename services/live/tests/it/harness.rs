//! Redis, the service and an HTTP client for the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;
use quire_lake::Lake;
use quire_live_server::{LiveServer, LiveServerOptions};
use serde_json::{Value, json};

/// A redis-server of the test's own, with its append-only file in `dir` (so a restart keeps
/// the streams, the consumer groups and their pending entries).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (make setup installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Stops the server as an operator would (`SHUTDOWN`, the AOF is on disk) and starts it
    /// again on the same port and directory.
    pub fn restart(&mut self) {
        self.cli(&["SHUTDOWN"]);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The service on 127.0.0.1:0 with its own lake and Redis.
pub struct Service {
    pub base: String,
    pub lake_dir: PathBuf,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn options(lake: &Path, redis: &Redis) -> LiveServerOptions {
    let mut o = LiveServerOptions::new(lake, redis.url());
    o.listen = "127.0.0.1:0".parse().expect("an address");
    o.archiver.block = Duration::from_millis(200);
    o.live.block = Duration::from_millis(100);
    o.live.today_every = Duration::from_millis(300);
    o
}

impl Service {
    pub async fn start(opts: LiveServerOptions) -> Service {
        let lake_dir = opts.lake.clone();
        let server = LiveServer::bind(opts)
            .await
            .expect("the live service starts");
        let addr = server.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the live service runs");
        });
        Service {
            base: format!("http://{addr}"),
            lake_dir,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("the live service stops cleanly");
        }
    }

    /// POSTs a body to the intake: (status, JSON answer).
    pub async fn post(&self, body: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/v1/events", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.expect("the intake answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    /// POSTs events, retrying while the bus is unavailable (503: send again).
    pub async fn post_events(&self, events: &[Value]) -> Value {
        let body = Value::Array(events.to_vec()).to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, answer) = self.post(&body, None).await;
            if status == 200 {
                return answer;
            }
            assert_eq!(status, 503, "{answer}");
            assert!(
                Instant::now() < deadline,
                "the intake stayed unavailable: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the service answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
        )
    }

    pub fn lake(&self) -> Lake {
        Lake::open(&self.lake_dir).expect("the lake opens")
    }
}

/// Waits until `check` gives `Some`, up to `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The committed event ids of the lake, in file order.
pub fn lake_event_ids(lake: &Lake) -> Vec<String> {
    let df = lake
        .scan_events()
        .expect("scan")
        .select([col("event_id")])
        .collect()
        .expect("event ids");
    df.column("event_id")
        .expect("event_id")
        .str()
        .expect("strings")
        .iter()
        .map(|s| s.unwrap_or_default().to_owned())
        .collect()
}

/// A valid event of the contract.
pub fn page_view(id: &str, ts: &str, user: &str) -> Value {
    json!({"event_id": id, "event_type": "page_view", "event_timestamp": ts,
           "user_id": user, "device": "mobile", "traffic_source": "organic", "page": "home"})
}

pub fn order(id: &str, ts: &str, user: &str, order_id: &str, total: f64) -> Value {
    json!({"event_id": id, "event_type": "order_placed", "event_timestamp": ts,
           "user_id": user, "device": "desktop", "order_id": order_id,
           "items": [{"book_id": "bk_1", "quantity": 1, "unit_price": total}],
           "total_price": total})
}

pub fn order_return(id: &str, ts: &str, user: &str, order_id: &str, refund: f64) -> Value {
    json!({"event_id": id, "event_type": "order_returned", "event_timestamp": ts,
           "user_id": user, "device": "desktop", "order_id": order_id, "refund_amount": refund})
}

/// The target directory, where test artifacts go (`$CARGO_TARGET_DIR/test-artifacts/`).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("creating the artifacts directory");
    dir
}
