//! Publishing a [`RecSets`] to Redis (one server or a cluster), atomically for readers.
//!
//! The steps, under the lock `{quire:recs:current}:lock` (a token with a lease, refreshed while
//! writing; hash-tagged into the pointer's cluster slot):
//! 1. read `quire:recs:current` and the publisher's set records (`quire:recs:sets`);
//! 2. if the current set has the same model, version and digest, stop: nothing to write;
//! 3. tidy up: delete the lists of half-written sets left by dead publishes (except one with
//!    the same content, which is reused) and, once their grace period is over, their index
//!    and record; retire published sets that are not current; forget retired sets whose keys
//!    have expired;
//! 4. record the new set as `building`, write its index (the list of its keys), then every
//!    list with pipelines, counting the acknowledgements;
//! 5. check every key exists, write `meta`;
//! 6. move the pointer with one script that checks the lock is still ours and sets
//!    `quire:recs:current`, record the set as `published`, and give every key of the previous
//!    set a TTL of the grace period.
//!
//! Deleting or retiring a set reaches its lists through its index, so the index keys are
//! deleted or given their TTL last: a run cut short can always be finished by the next one.
//!
//! A reader that follows the pointer therefore only ever finds complete sets; a publish that
//! dies before step 6 leaves the pointer where it was, and the next publish removes or reuses
//! what it wrote.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisResult, Value};
use serde::Serialize;

use crate::layout::{
    CURRENT_KEY, LOCK_KEY, ListJson, PREFIX, SETS_KEY, SetMeta, SetRecord, SetState,
    entry_prefixes, index_key, item_key, meta_key, popular_key, user_key,
};
use crate::{Error, RecList, RecSets, Result};

/// Where to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, e.g. `redis://127.0.0.1:6379` (or `redis://:password@host:port/db`). If
    /// the server turns out to be a node of a Redis Cluster (`INFO cluster`), the cluster is
    /// published to, with that node as its seed, as with [`RedisTarget::Cluster`].
    Single(String),
    /// A Redis Cluster, given by one or more of its nodes' URLs.
    Cluster(Vec<String>),
}

/// The model version the lists come from (goes into the set id and `meta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelRef {
    /// Registered model name (e.g. `cf`).
    pub name: String,
    /// Registered model version.
    pub version: u64,
    /// Registry run that produced it.
    pub run_id: String,
}

/// How to publish. [`PublishOptions::default`] is what the CLI uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishOptions {
    /// How long the previous set's keys live after the pointer moves (default 6 h).
    pub grace: Duration,
    /// Commands per pipeline (default 1000).
    pub batch_size: usize,
    /// Pipelines in flight at once on the connection (default 16).
    pub in_flight: usize,
    /// Lines (key names) per index key (default 10,000).
    pub index_chunk: usize,
    /// Lease of the publish lock; refreshed while writing (default 30 s). A publisher that
    /// dies blocks the next one for at most this long.
    pub lock_lease: Duration,
    /// How long to wait for a lock held by another publisher before failing (default 0).
    pub lock_wait: Duration,
    /// Count the set's keys with `EXISTS` before moving the pointer (default true): catches
    /// keys lost between the write and the move (eviction, failover).
    pub verify: bool,
    /// Timeout of a connection attempt (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of one command or pipeline (default 60 s).
    pub response_timeout: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            grace: Duration::from_secs(6 * 3600),
            batch_size: 1000,
            in_flight: 16,
            index_chunk: 10_000,
            lock_lease: Duration::from_secs(30),
            lock_wait: Duration::ZERO,
            verify: true,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
        }
    }
}

impl PublishOptions {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("batch_size", self.batch_size),
            ("in_flight", self.in_flight),
            ("index_chunk", self.index_chunk),
        ] {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.grace.as_secs() == 0 {
            return Err(Error::config("grace", "must be at least 1 second"));
        }
        if self.lock_lease < Duration::from_millis(100) {
            return Err(Error::config("lock_lease", "must be at least 100 ms"));
        }
        Ok(())
    }
}

/// Progress of a publish: keys acknowledged so far out of the keys to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishProgress {
    pub keys_done: u64,
    pub keys_total: u64,
}

/// What a publish did (`quire recs publish --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishSummary {
    /// The set `quire:recs:current` points to now.
    pub set: String,
    /// Users with a list in the set.
    pub users: u64,
    /// Books with a list in the set.
    pub items: u64,
    /// Keys of the set (lists, popular, index, meta).
    pub keys: u64,
    /// `compute_seconds + write_seconds`.
    pub seconds: f64,
    /// Time computing the lists ([`RecSets::compute_seconds`]).
    pub compute_seconds: f64,
    /// Time of the publish: connect, tidy, write, verify, move, retire.
    pub write_seconds: f64,
    /// True when the current set already held these lists: nothing was written.
    pub unchanged: bool,
    /// The set the pointer left (None when unchanged or on the first publish).
    pub previous: Option<String>,
    /// Half-written sets of earlier publishes whose lists were deleted (their index and
    /// record stay for the grace period; the first publish after it deletes their lists again,
    /// keys a publisher that lost its lock still had in flight, then their index).
    pub removed: Vec<String>,
    /// Sets given a TTL of the grace period (the previous set, and any published set left
    /// without one).
    pub retired: Vec<String>,
    /// What failed after the pointer moved (recording the new set, retiring the previous
    /// one), if anything: the new set is live all the same, and the next publish finishes the
    /// step (its tidy-up records the current set and retires the others).
    pub after_move_error: Option<String>,
}

/// Publishes `sets` to `target` as a new set (or confirms it is already current), moving
/// `quire:recs:current` only when every key is written. `progress` is called after every
/// pipeline.
pub async fn publish(
    target: &RedisTarget,
    sets: &RecSets,
    model: &ModelRef,
    opts: &PublishOptions,
    progress: impl FnMut(PublishProgress) + Send,
) -> Result<PublishSummary> {
    opts.validate()?;
    let start = Instant::now();
    match target {
        RedisTarget::Single(url) => {
            let (mut conn, addr) = connect_single(url, opts).await?;
            if !is_cluster_node(&mut conn, &addr).await {
                return Publisher::new(conn, false, addr, opts)
                    .run(sets, model, progress, start)
                    .await;
            }
            // Written as one server, its keys of other nodes' slots would be refused (MOVED).
            tracing::info!(%addr, "the server is a Redis Cluster node: publishing to its cluster");
            let (conn, addr) = connect_cluster(std::slice::from_ref(url), opts).await?;
            Publisher::new(conn, true, addr, opts)
                .run(sets, model, progress, start)
                .await
        }
        RedisTarget::Cluster(nodes) => {
            let (conn, addr) = connect_cluster(nodes, opts).await?;
            Publisher::new(conn, true, addr, opts)
                .run(sets, model, progress, start)
                .await
        }
    }
}

/// Checks that `target` answers (`PING`), so that a job can find an unreachable Redis before
/// the work of computing what it would publish. The publish connects again.
pub async fn check_reachable(target: &RedisTarget, opts: &PublishOptions) -> Result<()> {
    opts.validate()?;
    match target {
        RedisTarget::Single(url) => connect_single(url, opts).await.map(drop),
        RedisTarget::Cluster(nodes) => connect_cluster(nodes, opts).await.map(drop),
    }
}

/// Whether the server runs in cluster mode (`cluster_enabled:1` in `INFO cluster`). A server
/// that refuses `INFO` (an ACL without `@dangerous`, a renamed command, a proxy) is taken as
/// one server, as before the check: a cluster node would then refuse keys of other nodes' slots
/// (MOVED), and `--cluster` says it is one.
async fn is_cluster_node(conn: &mut redis::aio::MultiplexedConnection, addr: &str) -> bool {
    match redis::cmd("INFO")
        .arg("cluster")
        .query_async::<String>(conn)
        .await
    {
        Ok(info) => info.lines().any(|l| l.trim() == "cluster_enabled:1"),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "INFO cluster refused: publishing to one server");
            false
        }
    }
}

/// Opens a multiplexed connection to one server and checks it answers `PING`.
async fn connect_single(
    url: &str,
    opts: &PublishOptions,
) -> Result<(redis::aio::MultiplexedConnection, String)> {
    let client = Client::open(url).map_err(|source| Error::Connect {
        addr: redact(url),
        source,
    })?;
    let addr = client.get_connection_info().addr().to_string();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.response_timeout));
    let connect = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    };
    connect
        .await
        .map(|conn| (conn, addr.clone()))
        .map_err(|source| Error::Connect { addr, source })
}

/// Opens a cluster connection (it learns the slot map from the given nodes).
async fn connect_cluster(
    nodes: &[String],
    opts: &PublishOptions,
) -> Result<(redis::cluster_async::ClusterConnection, String)> {
    let addr = format!(
        "cluster {}",
        nodes
            .iter()
            .map(|n| redact(n))
            .collect::<Vec<_>>()
            .join(",")
    );
    let client = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(opts.connect_timeout)
        .response_timeout(opts.response_timeout)
        .retries(2)
        .build()
        .map_err(|source| Error::Connect {
            addr: addr.clone(),
            source,
        })?;
    let connect = async {
        let mut conn = client.get_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    };
    connect
        .await
        .map(|conn| (conn, addr.clone()))
        .map_err(|source| Error::Connect { addr, source })
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// `GET KEYS[1] == token` then extend its lease; 1 when still ours.
const REFRESH_LOCK: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Moves the pointer only if the lock is still ours, in one step: a publisher that stalled
/// past its lease cannot move it onto a set another publisher has since deleted. Answers
/// `{1, previous set or ""}`, or `{0, ""}` when the lock is not ours.
const MOVE_POINTER: &str = r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, ''}
end
local previous = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[2])
return {1, previous or ''}";

/// Deletes the lock only if it is still ours.
const RELEASE_LOCK: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Which list a data key holds.
#[derive(Debug, Clone, Copy)]
enum Source {
    User(u32),
    Item(u32),
    Popular,
}

struct Publisher<'o, C> {
    conn: C,
    cluster: bool,
    addr: String,
    opts: &'o PublishOptions,
    token: String,
    lock_refreshed: Instant,
}

impl<'o, C> Publisher<'o, C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn new(conn: C, cluster: bool, addr: String, opts: &'o PublishOptions) -> Self {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Publisher {
            conn,
            cluster,
            addr,
            opts,
            token: format!("pid-{}-{nanos}", std::process::id()),
            lock_refreshed: Instant::now(),
        }
    }

    fn redis_err(&self, step: &'static str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
        move |source| Error::Redis {
            addr: self.addr.clone(),
            step,
            source,
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, step: &'static str) -> Result<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(self.redis_err(step))
    }

    /// Runs one of the lock scripts with the lock key, our token and an optional lease.
    async fn lock_script(
        &self,
        source: &str,
        lease_ms: Option<u64>,
        step: &'static str,
    ) -> Result<i64> {
        let script = redis::Script::new(source);
        let mut invocation = script.key(LOCK_KEY);
        invocation.arg(&self.token);
        if let Some(ms) = lease_ms {
            invocation.arg(ms);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(self.redis_err(step))
    }

    async fn run(
        mut self,
        sets: &RecSets,
        model: &ModelRef,
        progress: impl FnMut(PublishProgress) + Send,
        start: Instant,
    ) -> Result<PublishSummary> {
        self.acquire_lock().await?;
        let result = self.run_locked(sets, model, progress, start).await;
        let released = self
            .lock_script(RELEASE_LOCK, None, "releasing the publish lock")
            .await;
        match (result, released) {
            (Ok(summary), Err(e)) => {
                tracing::warn!(error = %e, "publish done but the lock was not released; it expires with its lease");
                Ok(summary)
            }
            (result, _) => result,
        }
    }

    async fn acquire_lock(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.opts.lock_wait;
        let lease_ms = self.opts.lock_lease.as_millis() as u64;
        loop {
            let mut cmd = redis::cmd("SET");
            cmd.arg(LOCK_KEY)
                .arg(&self.token)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms);
            let got: Option<String> = self.query(&cmd, "taking the publish lock").await?;
            if got.is_some() {
                self.lock_refreshed = Instant::now();
                return Ok(());
            }
            if Instant::now() >= deadline {
                let holder: Option<String> = self
                    .query(redis::cmd("GET").arg(LOCK_KEY), "reading the publish lock")
                    .await?;
                return Err(Error::Locked {
                    key: LOCK_KEY.to_string(),
                    holder: holder.unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Extends the lock's lease; fails with [`Error::LockLost`] when it is no longer ours.
    async fn refresh_lock(&mut self, step: &'static str) -> Result<()> {
        let lease_ms = self.opts.lock_lease.as_millis() as u64;
        let ours = self
            .lock_script(REFRESH_LOCK, Some(lease_ms), "refreshing the publish lock")
            .await?;
        if ours != 1 {
            return Err(Error::LockLost {
                key: LOCK_KEY.to_string(),
                step,
            });
        }
        self.lock_refreshed = Instant::now();
        Ok(())
    }

    /// Points `quire:recs:current` at `set` if the lock is still ours; gives the set it
    /// pointed at before.
    async fn move_pointer(&mut self, set: &str) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        let (ours, previous): (i64, String) = redis::Script::new(MOVE_POINTER)
            .key(LOCK_KEY)
            .key(CURRENT_KEY)
            .arg(&self.token)
            .arg(set)
            .invoke_async(&mut conn)
            .await
            .map_err(self.redis_err("moving quire:recs:current"))?;
        if ours != 1 {
            return Err(Error::LockLost {
                key: LOCK_KEY.to_string(),
                step: "moving the pointer",
            });
        }
        Ok(Some(previous).filter(|p| !p.is_empty()))
    }

    async fn run_locked(
        &mut self,
        sets: &RecSets,
        model: &ModelRef,
        mut progress: impl FnMut(PublishProgress) + Send,
        start: Instant,
    ) -> Result<PublishSummary> {
        let created: DateTime<Utc> = Utc::now();
        let current: Option<String> = self
            .query(
                redis::cmd("GET").arg(CURRENT_KEY),
                "reading the current set",
            )
            .await?;
        let records = self.read_records().await?;
        let same_content = |r: &SetRecord| {
            r.digest == sets.digest && r.model == model.name && r.version == model.version
        };

        let users = sets.users_with_lists() as u64;
        let items = sets.items_with_lists() as u64;
        if let Some(cur) = &current
            && records.get(cur).is_some_and(same_content)
        {
            let meta: Option<String> = self
                .query(
                    redis::cmd("GET").arg(meta_key(cur)),
                    "reading the current set's meta",
                )
                .await?;
            if let Some(meta) = meta {
                let meta: SetMeta = serde_json::from_str(&meta).map_err(|e| Error::Corrupt {
                    key: meta_key(cur),
                    problem: e.to_string(),
                })?;
                let (removed, retired) = self.tidy(&records, current.as_deref(), None).await?;
                let write_seconds = start.elapsed().as_secs_f64();
                return Ok(PublishSummary {
                    set: cur.clone(),
                    users: meta.users,
                    items: meta.items,
                    keys: meta.keys + 1,
                    seconds: sets.compute_seconds + write_seconds,
                    compute_seconds: sets.compute_seconds,
                    write_seconds,
                    unchanged: true,
                    previous: None,
                    removed,
                    retired,
                    after_move_error: None,
                });
            }
        }

        // A half-written set with the same content is reused (its keys get overwritten).
        let reuse = records
            .iter()
            .filter(|(id, r)| {
                r.state == SetState::Building && Some(id.as_str()) != current.as_deref()
            })
            .find(|(_, r)| same_content(r))
            .map(|(id, _)| id.clone());
        let set = match reuse {
            Some(id) => id,
            None => self.new_set_id(created, model, &records, &current).await?,
        };
        let (removed, mut retired) = self.tidy(&records, current.as_deref(), Some(&set)).await?;

        // The keys: the index first (so a dead publish's keys can be found), then the lists.
        let mut data_keys = Vec::with_capacity(users as usize + items as usize + 1);
        let mut sources = Vec::with_capacity(data_keys.capacity());
        let mut index_lines = Vec::with_capacity(data_keys.capacity());
        for (u, list) in sets.users.iter().enumerate() {
            if !list.is_empty() {
                data_keys.push(user_key(&set, &sets.user_ids[u]));
                sources.push(Source::User(u as u32));
                index_lines.push(format!("user:{}", sets.user_ids[u]));
            }
        }
        for (i, list) in sets.items.iter().enumerate() {
            if !list.is_empty() {
                data_keys.push(item_key(&set, &sets.book_ids[i]));
                sources.push(Source::Item(i as u32));
                index_lines.push(format!("item:{}", sets.book_ids[i]));
            }
        }
        data_keys.push(popular_key(&set));
        sources.push(Source::Popular);
        let index_values: Vec<String> = index_lines
            .chunks(self.opts.index_chunk)
            .map(|c| c.join("\n"))
            .collect();
        let index_keys: Vec<String> = (0..index_values.len())
            .map(|k| index_key(&set, k))
            .collect();
        let keys_total = (index_keys.len() + data_keys.len() + 1) as u64;

        let record = SetRecord {
            state: SetState::Building,
            model: model.name.clone(),
            version: model.version,
            digest: sets.digest.clone(),
            index_chunks: index_keys.len() as u64,
            started_at: created.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires_at: None,
        };
        self.put_record(&set, &record).await?;

        let prefixes = entry_prefixes(&sets.book_ids);
        let mut done = 0u64;
        let acked = self
            .run_batches(
                &index_keys,
                |pipe, batch| {
                    pipe.cmd("MSET");
                    for &k in batch {
                        pipe.arg(&index_keys[k]).arg(&index_values[k]);
                    }
                },
                all_set,
                "writing the set index",
                |n| {
                    done += n;
                    progress(PublishProgress {
                        keys_done: done,
                        keys_total,
                    });
                },
            )
            .await?;
        self.check_count(&set, acked, index_keys.len())?;
        let acked = self
            .run_batches(
                &data_keys,
                |pipe, batch| {
                    let lists: Vec<&RecList> = batch
                        .iter()
                        .map(|&k| match sources[k] {
                            Source::User(u) => &sets.users[u as usize],
                            Source::Item(i) => &sets.items[i as usize],
                            Source::Popular => &sets.popular,
                        })
                        .collect();
                    // Room for every key and value: no reallocation while serialising.
                    let bytes: usize = batch
                        .iter()
                        .zip(&lists)
                        .map(|(&k, l)| data_keys[k].len() + 24 + 48 * l.len())
                        .sum();
                    let mut mset = Cmd::with_capacity(1 + 2 * batch.len(), 4 + bytes);
                    mset.arg("MSET");
                    for (&k, list) in batch.iter().zip(lists) {
                        mset.arg(&data_keys[k]).arg(ListJson {
                            list,
                            prefixes: &prefixes,
                        });
                    }
                    pipe.add_command(mset);
                },
                all_set,
                "writing the lists",
                |n| {
                    done += n;
                    progress(PublishProgress {
                        keys_done: done,
                        keys_total,
                    });
                },
            )
            .await?;
        self.check_count(&set, acked, data_keys.len())?;

        if self.opts.verify {
            let mut all = index_keys.clone();
            all.extend(data_keys.iter().cloned());
            let present = self
                .run_batches(
                    &all,
                    |pipe, batch| {
                        pipe.cmd("EXISTS");
                        for &k in batch {
                            pipe.arg(&all[k]);
                        }
                    },
                    |replies, _| match replies {
                        [Value::Int(present)] => (*present).max(0) as u64,
                        _ => 0,
                    },
                    "verifying the set's keys",
                    |_| {},
                )
                .await?;
            self.check_count(&set, present, all.len())?;
        }

        let meta = SetMeta {
            set: set.clone(),
            model: model.name.clone(),
            version: model.version,
            run_id: model.run_id.clone(),
            created_at: record.started_at.clone(),
            users,
            items,
            n: sets.n as u64,
            popular: sets.popular.len() as u64,
            keys: keys_total - 1,
            digest: sets.digest.clone(),
            index_chunks: index_keys.len() as u64,
        };
        let meta_json = serde_json::to_string(&meta).map_err(|e| Error::Corrupt {
            key: meta_key(&set),
            problem: e.to_string(),
        })?;
        self.query::<()>(
            redis::cmd("SET").arg(meta_key(&set)).arg(meta_json),
            "writing the set's meta",
        )
        .await?;
        progress(PublishProgress {
            keys_done: keys_total,
            keys_total,
        });

        let previous = self.move_pointer(&set).await?;
        // The set is live from here: a failure now is reported beside a successful publish.
        let after_move = async {
            self.put_record(
                &set,
                &SetRecord {
                    state: SetState::Published,
                    ..record
                },
            )
            .await?;
            if let Some(prev) = previous.as_deref().filter(|p| *p != set) {
                match records.get(prev) {
                    Some(rec) => {
                        self.retire(prev, rec).await?;
                        retired.push(prev.to_string());
                    }
                    None => tracing::warn!(
                        set = prev,
                        "the previous set has no publisher record: its keys get no TTL"
                    ),
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        let after_move_error = after_move.err().map(|e| {
            tracing::warn!(
                %set,
                error = %e,
                "the new set is live, but a step after moving the pointer failed; the next publish finishes it"
            );
            e.to_string()
        });

        let write_seconds = start.elapsed().as_secs_f64();
        Ok(PublishSummary {
            set,
            users,
            items,
            keys: keys_total,
            seconds: sets.compute_seconds + write_seconds,
            compute_seconds: sets.compute_seconds,
            write_seconds,
            unchanged: false,
            previous,
            removed,
            retired,
            after_move_error,
        })
    }

    fn check_count(&self, set: &str, acknowledged: u64, expected: usize) -> Result<()> {
        if acknowledged != expected as u64 {
            return Err(Error::Incomplete {
                set: set.to_string(),
                acknowledged,
                expected: expected as u64,
            });
        }
        Ok(())
    }

    async fn read_records(&self) -> Result<HashMap<String, SetRecord>> {
        let raw: HashMap<String, String> = self
            .query(
                redis::cmd("HGETALL").arg(SETS_KEY),
                "reading the set records",
            )
            .await?;
        raw.into_iter()
            .map(|(id, json)| {
                serde_json::from_str(&json)
                    .map(|r| (id.clone(), r))
                    .map_err(|e| Error::Corrupt {
                        key: format!("{SETS_KEY} field {id}"),
                        problem: e.to_string(),
                    })
            })
            .collect()
    }

    async fn put_record(&self, set: &str, record: &SetRecord) -> Result<()> {
        let json = serde_json::to_string(record).map_err(|e| Error::Corrupt {
            key: format!("{SETS_KEY} field {set}"),
            problem: e.to_string(),
        })?;
        self.query::<()>(
            redis::cmd("HSET").arg(SETS_KEY).arg(set).arg(json),
            "recording the set",
        )
        .await
    }

    /// `{yyyymmddThhmm}-{model}-v{version}`, with `-2`, `-3`… when a set of that name exists.
    async fn new_set_id(
        &self,
        created: DateTime<Utc>,
        model: &ModelRef,
        records: &HashMap<String, SetRecord>,
        current: &Option<String>,
    ) -> Result<String> {
        let name: String = model
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = format!(
            "{}-{name}-v{}",
            created.format("%Y%m%dT%H%M"),
            model.version
        );
        let mut k = 1u32;
        loop {
            let id = if k == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            k += 1;
            if records.contains_key(&id) || current.as_deref() == Some(id.as_str()) {
                continue;
            }
            // One key per EXISTS: in a cluster the keys live in different slots.
            let mut exists = 0i64;
            for key in [meta_key(&id), popular_key(&id), index_key(&id, 0)] {
                exists += self
                    .query::<i64>(redis::cmd("EXISTS").arg(key), "choosing a set id")
                    .await?;
            }
            if exists == 0 {
                return Ok(id);
            }
        }
    }

    /// Deletes half-written sets (except `keep`; see the `Building` arm), retires published
    /// sets that are not current, forgets retired sets past their expiry, and marks the
    /// current set published (a publish that died right after moving the pointer left it
    /// `building`).
    async fn tidy(
        &mut self,
        records: &HashMap<String, SetRecord>,
        current: Option<&str>,
        keep: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (mut removed, mut retired) = (Vec::new(), Vec::new());
        let now = Utc::now().timestamp();
        let mut ids: Vec<&String> = records.keys().collect();
        ids.sort();
        for id in ids {
            let rec = &records[id];
            if Some(id.as_str()) == current {
                if rec.state == SetState::Retired {
                    // The pointer was moved back by hand onto a retired set: its keys would
                    // expire under the pointer. They are kept again.
                    let keys = self.set_keys(id, rec).await?;
                    self.on_set_keys(
                        &keys,
                        |pipe, keys, batch| {
                            for &k in batch {
                                pipe.cmd("PERSIST").arg(&keys[k]);
                            }
                        },
                        "keeping the current set's keys",
                    )
                    .await?;
                    tracing::warn!(set = %id, "the pointer is on a retired set: its keys are kept again");
                }
                if rec.state != SetState::Published || rec.expires_at.is_some() {
                    self.put_record(
                        id,
                        &SetRecord {
                            state: SetState::Published,
                            expires_at: None,
                            ..rec.clone()
                        },
                    )
                    .await?;
                }
                continue;
            }
            if Some(id.as_str()) == keep {
                continue;
            }
            match rec.state {
                SetState::Building => {
                    // A half-written set's lists are deleted, but its index and record stay
                    // for the grace period (`expires_at`): a publisher that lost its lock may
                    // still have had pipelines in flight, whose keys land after this deletion.
                    // The first publish after the grace period deletes its lists again, then
                    // its index, and forgets it.
                    let last = match rec.expires_at {
                        None => false,
                        Some(t) if t <= now => true,
                        Some(_) => continue,
                    };
                    let keys = self.set_keys(id, rec).await?;
                    let gone = SetKeys {
                        data: keys.data,
                        index: if last { keys.index } else { Vec::new() },
                    };
                    self.on_set_keys(
                        &gone,
                        |pipe, keys, batch| {
                            pipe.cmd("UNLINK");
                            for &k in batch {
                                pipe.arg(&keys[k]);
                            }
                        },
                        "deleting a half-written set",
                    )
                    .await?;
                    if last {
                        self.query::<()>(
                            redis::cmd("HDEL").arg(SETS_KEY).arg(id),
                            "forgetting a deleted set",
                        )
                        .await?;
                        tracing::info!(set = %id, "forgot a deleted half-written set");
                    } else {
                        let grace = self.opts.grace.as_secs();
                        self.put_record(
                            id,
                            &SetRecord {
                                expires_at: Some(now + grace as i64),
                                ..rec.clone()
                            },
                        )
                        .await?;
                        tracing::info!(
                            set = %id,
                            keys = gone.data.len(),
                            grace_seconds = grace,
                            "deleted a half-written set; its index is kept for the grace period"
                        );
                        removed.push(id.clone());
                    }
                }
                SetState::Published => {
                    self.retire(id, rec).await?;
                    retired.push(id.clone());
                }
                SetState::Retired => {
                    if rec.expires_at.is_none_or(|t| t <= now) {
                        self.query::<()>(
                            redis::cmd("HDEL").arg(SETS_KEY).arg(id),
                            "forgetting an expired set",
                        )
                        .await?;
                    }
                }
            }
        }
        Ok((removed, retired))
    }

    /// Gives every key of `set` a TTL of the grace period and records it as retired.
    async fn retire(&mut self, set: &str, rec: &SetRecord) -> Result<()> {
        let keys = self.set_keys(set, rec).await?;
        let grace = self.opts.grace.as_secs();
        self.on_set_keys(
            &keys,
            |pipe, keys, batch| {
                for &k in batch {
                    pipe.cmd("EXPIRE").arg(&keys[k]).arg(grace);
                }
            },
            "setting the TTL of the previous set",
        )
        .await?;
        self.put_record(
            set,
            &SetRecord {
                state: SetState::Retired,
                expires_at: Some(Utc::now().timestamp() + grace as i64),
                ..rec.clone()
            },
        )
        .await?;
        tracing::info!(
            set,
            keys = keys.len(),
            grace_seconds = grace,
            "retired a set"
        );
        Ok(())
    }

    /// Every key of a set, from its index: lists, popular, meta, and the index keys
    /// themselves. Index keys that are missing (a publish that died while writing the index,
    /// before any list) are skipped.
    async fn set_keys(&self, set: &str, rec: &SetRecord) -> Result<SetKeys> {
        let mut keys = SetKeys {
            data: vec![popular_key(set), meta_key(set)],
            index: Vec::new(),
        };
        for k in 0..rec.index_chunks as usize {
            let key = index_key(set, k);
            let chunk: Option<String> = self
                .query(redis::cmd("GET").arg(&key), "reading a set index")
                .await?;
            if let Some(chunk) = chunk {
                keys.data
                    .extend(chunk.lines().map(|l| format!("{PREFIX}:{set}:{l}")));
            }
            keys.index.push(key);
        }
        Ok(keys)
    }

    /// Runs `add`'s commands (`UNLINK`, `EXPIRE`) on a set's keys: every other key first, its
    /// index keys only once those are done. The index is how a later publish finds the keys,
    /// so a run cut short (a lost connection, a killed publisher) never leaves lists whose
    /// index is gone or expiring while they stay without a TTL; the set's record is unchanged,
    /// and the next publish runs it again from the index. (On a cluster the batches follow hash
    /// slots, not the key order, so the two groups are two runs.)
    async fn on_set_keys(
        &mut self,
        keys: &SetKeys,
        mut add: impl FnMut(&mut Pipeline, &[String], &[usize]),
        step: &'static str,
    ) -> Result<()> {
        for group in [&keys.data, &keys.index] {
            self.run_batches(
                group,
                |pipe, batch| add(pipe, group, batch),
                |_, _| 0,
                step,
                |_| {},
            )
            .await?;
        }
        Ok(())
    }

    /// Splits `keys` into batches of at most `batch_size`, has `add` put the commands for a
    /// batch into one pipeline, and runs `in_flight` pipelines at a time; returns the sum of
    /// `count(replies, batch length)`. On a single server the batches follow the key order; on
    /// a cluster each batch holds keys of one hash slot (so a multi-key command such as `MSET`
    /// or `EXISTS` is valid, and the `redis` crate's cluster connection routes the pipeline to
    /// the slot's master), slots in order of their first key.
    async fn run_batches(
        &mut self,
        keys: &[String],
        mut add: impl FnMut(&mut Pipeline, &[usize]),
        count: fn(&[Value], usize) -> u64,
        step: &'static str,
        mut on_batch: impl FnMut(u64),
    ) -> Result<u64> {
        let batches = plan_batches(keys, self.cluster, self.opts.batch_size);
        let mut inflight = FuturesUnordered::new();
        let mut acked = 0u64;
        let mut batches = batches.into_iter();
        loop {
            // Before sending, not only after a reply: a publisher paused past its lease since
            // its last refresh (another may have taken the lock and reused this set) must not
            // send its first pipelines, deletions included.
            if self.lock_refreshed.elapsed() > self.opts.lock_lease / 3 {
                self.refresh_lock(step).await?;
            }
            while inflight.len() < self.opts.in_flight {
                let Some(batch) = batches.next() else { break };
                let mut pipe = Pipeline::new();
                add(&mut pipe, &batch);
                inflight.push(send(self.conn.clone(), pipe, batch.len()));
            }
            let Some(reply) = inflight.next().await else {
                break;
            };
            let (n, replies) = reply;
            let replies = replies.map_err(self.redis_err(step))?;
            acked += count(&replies, n);
            on_batch(n as u64);
        }
        Ok(acked)
    }
}

/// A set's keys, as [`Publisher::set_keys`] finds them.
struct SetKeys {
    /// Lists, popular and meta.
    data: Vec<String>,
    /// The index keys naming the lists.
    index: Vec<String>,
}

impl SetKeys {
    fn len(&self) -> usize {
        self.data.len() + self.index.len()
    }
}

async fn send<C: ConnectionLike>(
    mut conn: C,
    pipe: Pipeline,
    keys: usize,
) -> (usize, RedisResult<Vec<Value>>) {
    (keys, pipe.query_async(&mut conn).await)
}

/// Acknowledged keys of a batch written with one `MSET`.
fn all_set(replies: &[Value], keys: usize) -> u64 {
    match replies {
        [Value::Okay] => keys as u64,
        _ => 0,
    }
}

/// Groups key positions into pipelines: consecutive chunks on a single server; on a cluster,
/// chunks of keys sharing a hash slot.
fn plan_batches(keys: &[String], cluster: bool, batch_size: usize) -> Vec<Vec<usize>> {
    if !cluster {
        return (0..keys.len())
            .collect::<Vec<_>>()
            .chunks(batch_size)
            .map(<[usize]>::to_vec)
            .collect();
    }
    let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
    let mut order = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let slot = Slot::for_key(key);
        by_slot
            .entry(slot)
            .or_insert_with(|| {
                order.push(slot);
                Vec::new()
            })
            .push(k);
    }
    order
        .iter()
        .flat_map(|slot| {
            by_slot[slot]
                .chunks(batch_size)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_server_batches_keep_order() {
        let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        assert_eq!(
            plan_batches(&keys, false, 3),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
    }

    #[test]
    fn cluster_batches_hold_one_slot_each() {
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("quire:recs:s:user:usr_{i}"))
            .collect();
        let batches = plan_batches(&keys, true, 2);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..5000).collect::<Vec<_>>());
        for b in &batches {
            assert!(!b.is_empty() && b.len() <= 2);
            let slot = Slot::for_key(&keys[b[0]]);
            assert!(b.iter().all(|&k| Slot::for_key(&keys[k]) == slot));
        }
        // Keys with a hash tag share a slot: one full batch after another.
        let tagged: Vec<String> = (0..5).map(|i| format!("{{tag}}:{i}")).collect();
        assert_eq!(
            plan_batches(&tagged, true, 2),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://…@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
