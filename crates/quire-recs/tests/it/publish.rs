//! Publishing to one Redis server: layout, idempotence, retirement, interrupted publishes,
//! concurrent readers, the lock, connection errors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use quire_recs::layout::{self, RecListValue, SetMeta, SetRecord, SetState};
use quire_recs::{Error, ModelRef, PublishOptions, PublishProgress, RecSets, RedisTarget, publish};

use crate::check::{check_set, expected, ttls};
use crate::data::{self, N};
use crate::harness::{RedisServer, free_port};

pub fn model(version: u64) -> ModelRef {
    ModelRef {
        name: "cf".into(),
        version,
        run_id: format!("run{version}"),
    }
}

pub fn opts() -> PublishOptions {
    PublishOptions {
        batch_size: 50,
        grace: Duration::from_secs(600),
        ..PublishOptions::default()
    }
}

/// [`opts`] with index keys of 7 lists, so that a set has many (for the order of its keys).
pub fn small_index() -> PublishOptions {
    PublishOptions {
        index_chunk: 7,
        ..opts()
    }
}

pub fn current(con: &mut impl redis::ConnectionLike) -> Option<String> {
    redis::cmd("GET")
        .arg(layout::CURRENT_KEY)
        .query(con)
        .expect("GET current")
}

fn keys_of(con: &mut redis::Connection, set: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{}:{set}:*", layout::PREFIX))
        .query(con)
        .expect("KEYS")
}

fn record(con: &mut redis::Connection, set: &str) -> Option<SetRecord> {
    let json: Option<String> = redis::cmd("HGET")
        .arg(layout::SETS_KEY)
        .arg(set)
        .query(con)
        .expect("HGET");
    json.map(|j| serde_json::from_str(&j).expect("record JSON"))
}

/// `yyyymmddThhmm-cf-v{version}`, optionally with a `-k` suffix.
fn assert_set_id(set: &str, version: u64) {
    let (stamp, rest) = set.split_at(13);
    assert!(
        stamp.len() == 13
            && stamp.as_bytes()[8] == b'T'
            && stamp
                .chars()
                .enumerate()
                .all(|(i, c)| i == 8 || c.is_ascii_digit()),
        "bad timestamp in {set}"
    );
    assert!(rest.starts_with(&format!("-cf-v{version}")), "{set}");
}

#[tokio::test]
async fn publish_writes_the_contract_layout() {
    let server = RedisServer::start();
    let (input, sets) = data::sets(1);
    let mut calls: Vec<PublishProgress> = Vec::new();
    let summary = publish(
        &RedisTarget::Single(server.url()),
        &sets,
        &model(7),
        &opts(),
        |p| calls.push(p),
    )
    .await
    .unwrap();
    let mut con = server.sync();

    assert_set_id(&summary.set, 7);
    assert_eq!(current(&mut con).as_deref(), Some(summary.set.as_str()));
    assert!(!summary.unchanged);
    assert_eq!(summary.previous, None);
    assert_eq!(summary.users, sets.users_with_lists() as u64);
    assert_eq!(summary.items, sets.items_with_lists() as u64);
    assert!(
        summary.users < data::USERS as u64,
        "unknown users get no key"
    );
    assert!(summary.write_seconds > 0.0);
    assert_eq!(
        summary.seconds,
        summary.compute_seconds + summary.write_seconds
    );

    let meta: SetMeta = check_set(&mut con, &summary.set, &input, &sets);
    assert_eq!((meta.model.as_str(), meta.version), ("cf", 7));
    assert_eq!(meta.run_id, "run7");
    assert_eq!(meta.n, N as u64);
    assert!(chrono::DateTime::parse_from_rfc3339(&meta.created_at).is_ok());
    // The set's keys: lists, popular, index, meta; none with a TTL.
    assert_eq!(keys_of(&mut con, &summary.set).len() as u64, summary.keys);
    assert_eq!(meta.keys + 1, summary.keys);
    assert!(ttls(&mut con, &summary.set, &sets).iter().all(|&t| t == -1));
    assert_eq!(
        record(&mut con, &summary.set).map(|r| r.state),
        Some(SetState::Published)
    );
    // The lock is released.
    let lock: Option<String> = redis::cmd("GET")
        .arg(layout::LOCK_KEY)
        .query(&mut con)
        .unwrap();
    assert_eq!(lock, None);

    // Progress climbs to the total, one call per pipeline plus the meta.
    let last = calls.last().copied().expect("progress calls");
    assert_eq!(last.keys_done, summary.keys);
    assert_eq!(last.keys_total, summary.keys);
    assert!(calls.windows(2).all(|w| w[0].keys_done <= w[1].keys_done));
    assert!(calls.len() as u64 > summary.keys / 50);
}

#[tokio::test]
async fn republishing_the_same_lists_writes_nothing() {
    let server = RedisServer::start();
    let (_, sets) = data::sets(1);
    let target = RedisTarget::Single(server.url());
    let first = publish(&target, &sets, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let mut con = server.sync();
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    let again = publish(&target, &sets, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.set, first.set);
    assert_eq!((again.users, again.items), (first.users, first.items));
    assert_eq!(again.keys, first.keys);
    assert_eq!(current(&mut con), Some(first.set.clone()));
    assert_eq!(redis::cmd("DBSIZE").query::<u64>(&mut con).unwrap(), dbsize);
    assert!(ttls(&mut con, &first.set, &sets).iter().all(|&t| t == -1));

    // The same lists under another model version are another set.
    let v8 = publish(&target, &sets, &model(8), &opts(), |_| {})
        .await
        .unwrap();
    assert!(!v8.unchanged);
    assert_set_id(&v8.set, 8);
    assert_eq!(v8.previous, Some(first.set));
}

#[tokio::test]
async fn next_publish_moves_the_pointer_and_expires_the_previous_set() {
    let server = RedisServer::start();
    let (input_a, sets_a) = data::sets(1);
    let (input_b, sets_b) = data::sets(2);
    assert_ne!(sets_a.digest, sets_b.digest);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let b = publish(&target, &sets_b, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let mut con = server.sync();

    // Same model version, same minute, other lists: a new id with a suffix.
    assert_ne!(a.set, b.set);
    assert_set_id(&b.set, 7);
    assert_eq!(current(&mut con), Some(b.set.clone()));
    assert_eq!(b.previous.as_deref(), Some(a.set.as_str()));
    assert_eq!(b.retired, vec![a.set.clone()]);
    check_set(&mut con, &b.set, &input_b, &sets_b);
    assert!(ttls(&mut con, &b.set, &sets_b).iter().all(|&t| t == -1));

    // The previous set is still complete for readers in flight, and expires after the grace.
    check_set(&mut con, &a.set, &input_a, &sets_a);
    let old = ttls(&mut con, &a.set, &sets_a);
    assert!(old.iter().all(|&t| t > 590 && t <= 600), "{old:?}");
    for key in keys_of(&mut con, &a.set) {
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
        assert!(ttl > 0, "{key} has no TTL");
    }
    let rec = record(&mut con, &a.set).expect("record of the previous set");
    assert_eq!(rec.state, SetState::Retired);
    assert!(rec.expires_at.is_some());

    // An operator moves the pointer back by hand; publishing a's lists again finds them
    // current and unchanged, and keeps a's keys from expiring under the pointer.
    let _: () = redis::cmd("SET")
        .arg(layout::CURRENT_KEY)
        .arg(&a.set)
        .query(&mut con)
        .unwrap();
    let again = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.set, a.set);
    for key in keys_of(&mut con, &a.set) {
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
        assert_eq!(ttl, -1, "{key} still expires");
    }
    let rec = record(&mut con, &a.set).expect("record");
    assert_eq!((rec.state, rec.expires_at), (SetState::Published, None));
}

#[tokio::test]
async fn a_failure_after_the_pointer_moved_is_reported_beside_a_successful_publish() {
    let server = RedisServer::start();
    let (_, sets_a) = data::sets(1);
    let (input_b, sets_b) = data::sets(2);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    assert_eq!(a.after_move_error, None);
    // The previous set's index is damaged: retiring it (after the move) cannot read it.
    let mut con = server.sync();
    let index = layout::index_key(&a.set, 0);
    let _: () = redis::cmd("DEL").arg(&index).query(&mut con).unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&index)
        .arg("x")
        .query(&mut con)
        .unwrap();

    let b = publish(&target, &sets_b, &model(7), &opts(), |_| {})
        .await
        .expect("the new set is live: the publish succeeded");
    assert_eq!(current(&mut con), Some(b.set.clone()));
    check_set(&mut con, &b.set, &input_b, &sets_b);
    let err = b.after_move_error.expect("the failed retire is reported");
    assert!(err.contains("reading a set index"), "{err}");
    assert!(b.retired.is_empty());
}

/// Records, in the order the server ran them, the keys of Redis's `events` keyspace events
/// (e.g. `expire`, `del`) until [`KeyEvents::finish`]: the test server's own account of the
/// order of a publisher's commands. On a cluster, one per node: each node sees its own keys.
pub struct KeyEvents {
    url: String,
    thread: std::thread::JoinHandle<Vec<String>>,
}

/// The prefix of the key whose events end a [`KeyEvents`].
const END_OF_EVENTS: &str = "test:end-of-events";

impl KeyEvents {
    pub fn start(server: &RedisServer, event: &str) -> Self {
        let mut con = server.sync();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Eg")
            .query(&mut con)
            .unwrap();
        // A missing end event fails the test instead of hanging it.
        con.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let channel = format!("__keyevent@0__:{event}");
        let thread = std::thread::spawn(move || {
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(&channel).unwrap();
            ready_tx.send(()).unwrap();
            let mut keys = Vec::new();
            loop {
                let key: String = pubsub.get_message().unwrap().get_payload().unwrap();
                if key.starts_with(END_OF_EVENTS) {
                    return keys;
                }
                keys.push(key);
            }
        });
        ready.recv().unwrap();
        Self {
            url: server.url(),
            thread,
        }
    }

    /// The keys seen; `event` must be one a `SET`, `EXPIRE` and `DEL` of a key fire together.
    pub fn finish(self) -> Vec<String> {
        let mut con = redis::Client::open(self.url)
            .and_then(|c| c.get_connection())
            .unwrap();
        // A key of this node's slots (a cluster node refuses the others with MOVED).
        let end = (0..10_000)
            .map(|n| format!("{END_OF_EVENTS}-{n}"))
            .find(|key| {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .query::<()>(&mut con)
                    .is_ok()
            })
            .expect("a key of the node's slots");
        let _: () = redis::cmd("EXPIRE")
            .arg(&end)
            .arg(60)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("DEL").arg(&end).query(&mut con).unwrap();
        self.thread.join().unwrap()
    }
}

fn is_index(key: &&String) -> bool {
    key.contains(":index:")
}

/// The keys of `set` in `keys`, in order, asserting that none of its lists comes after one of
/// its index keys.
pub fn index_after_lists<'k>(keys: &'k [String], set: &str) -> Vec<&'k String> {
    let ours: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{}:{set}:", layout::PREFIX)))
        .collect();
    if let Some(first) = ours.iter().position(is_index) {
        assert!(
            ours[first..].iter().all(is_index),
            "a list after the index: {ours:?}"
        );
    }
    ours
}

/// Asserts that `ours` has lists and more than one index key (so that the order says
/// something).
fn assert_lists_and_index_keys(ours: &[&String]) {
    let index = ours.iter().filter(|k| is_index(k)).count();
    assert!(index > 1 && index < ours.len(), "{ours:?}");
}

#[tokio::test]
async fn a_server_that_refuses_info_is_published_to_as_one_server() {
    // An account without INFO (ACL `-info`, as a `-@dangerous` one has): the cluster check
    // cannot run, and the publish goes on as to one server.
    let server = RedisServer::start();
    let mut con = server.sync();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("publisher")
        .arg("on")
        .arg(">secret")
        .arg("+@all")
        .arg("-info")
        .arg("~*")
        .arg("&*")
        .query(&mut con)
        .unwrap();
    let target = RedisTarget::Single(format!(
        "redis://publisher:secret@127.0.0.1:{}",
        server.port
    ));
    let (input, sets) = data::sets(1);
    let a = publish(&target, &sets, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    assert_eq!(current(&mut con), Some(a.set.clone()));
    check_set(&mut con, &a.set, &input, &sets);
}

#[tokio::test]
async fn retiring_a_set_expires_its_index_only_after_its_lists() {
    // If a retire is cut short, the set stays `published` and the next publish retires it
    // again from its index: the index must not expire while lists are still without a TTL.
    let server = RedisServer::start();
    let (_, sets_a) = data::sets(1);
    let (_, sets_b) = data::sets(2);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets_a, &model(7), &small_index(), |_| {})
        .await
        .unwrap();
    let events = KeyEvents::start(&server, "expire");
    let b = publish(&target, &sets_b, &model(8), &small_index(), |_| {})
        .await
        .unwrap();
    assert_eq!(b.retired, vec![a.set.clone()]);
    let keys = events.finish();
    let ours = index_after_lists(&keys, &a.set);
    assert_eq!(ours.len() as u64, a.keys);
    assert_lists_and_index_keys(&ours);
}

/// Starts publishing `sets` in a task and aborts it after `after` acknowledged keys, like a
/// publisher killed mid-write, with index keys of `index_chunk` lists. Returns (keys done,
/// keys total) at the abort.
async fn publish_and_kill(
    url: String,
    sets: RecSets,
    version: u64,
    after: u64,
    index_chunk: usize,
) -> (u64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let opts = PublishOptions {
        batch_size: 10,
        in_flight: 1,
        lock_lease: Duration::from_millis(300),
        index_chunk,
        ..opts()
    };
    let task = tokio::spawn({
        let (done, total) = (done.clone(), total.clone());
        async move {
            publish(
                &RedisTarget::Single(url),
                &sets,
                &model(version),
                &opts,
                |p| {
                    done.store(p.keys_done, Ordering::SeqCst);
                    total.store(p.keys_total, Ordering::SeqCst);
                },
            )
            .await
        }
    });
    while done.load(Ordering::SeqCst) < after {
        assert!(
            !task.is_finished(),
            "the publish ended before it could be killed"
        );
        tokio::task::yield_now().await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    (done.load(Ordering::SeqCst), total.load(Ordering::SeqCst))
}

fn building_sets(con: &mut redis::Connection) -> Vec<String> {
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(layout::SETS_KEY)
        .query(con)
        .unwrap();
    let mut ids: Vec<String> = all
        .into_iter()
        .filter(|(_, j)| serde_json::from_str::<SetRecord>(j).unwrap().state == SetState::Building)
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

// A single-threaded runtime: the publish task runs only while the test task waits, so it is
// suspended at an await (mid-write) when it is aborted.
#[tokio::test(flavor = "current_thread")]
async fn killed_publish_leaves_the_pointer_and_the_next_run_reuses_its_set() {
    let server = RedisServer::start();
    let (input_a, sets_a) = data::sets(1);
    let (input_b, sets_b) = data::sets(2);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();

    let (done, total) =
        publish_and_kill(server.url(), sets_b.clone(), 8, 60, opts().index_chunk).await;
    assert!(
        done >= 60 && done < total,
        "killed at {done} of {total} keys"
    );
    let mut con = server.sync();
    assert_eq!(
        current(&mut con),
        Some(a.set.clone()),
        "pointer must not move"
    );
    check_set(&mut con, &a.set, &input_a, &sets_a);
    assert!(ttls(&mut con, &a.set, &sets_a).iter().all(|&t| t == -1));
    let partial = building_sets(&mut con);
    assert_eq!(partial.len(), 1);
    let written = keys_of(&mut con, &partial[0]).len() as u64;
    assert!(written > 0 && written < total, "{written} keys of {total}");

    // The next run with the same lists waits out the dead publisher's lease, reuses the set.
    let opts_wait = PublishOptions {
        lock_wait: Duration::from_secs(10),
        ..opts()
    };
    let b = publish(&target, &sets_b, &model(8), &opts_wait, |_| {})
        .await
        .unwrap();
    assert_eq!(b.set, partial[0]);
    assert!(b.removed.is_empty());
    assert_eq!(current(&mut con), Some(b.set.clone()));
    check_set(&mut con, &b.set, &input_b, &sets_b);
    assert_eq!(keys_of(&mut con, &b.set).len() as u64, b.keys);
    assert_eq!(b.retired, vec![a.set.clone()]);
    assert!(building_sets(&mut con).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn killed_publish_is_removed_by_the_next_publish_of_other_lists() {
    let server = RedisServer::start();
    let (_, sets_a) = data::sets(1);
    let (_, sets_b) = data::sets(2);
    let (input_c, sets_c) = data::sets(3);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    // Killed once its index (about 45 keys of 7 lists) and lists of several index keys are written.
    publish_and_kill(server.url(), sets_b, 8, 80, 7).await;
    let mut con = server.sync();
    let partial = building_sets(&mut con);
    assert_eq!(partial.len(), 1);
    let written = keys_of(&mut con, &partial[0]).len();
    assert!(written > 0);

    let opts_wait = PublishOptions {
        lock_wait: Duration::from_secs(10),
        ..opts()
    };
    let c = publish(&target, &sets_c, &model(9), &opts_wait, |_| {})
        .await
        .unwrap();
    assert_eq!(c.removed, partial);
    assert_eq!(current(&mut con), Some(c.set.clone()));
    assert_eq!(c.previous, Some(a.set));
    check_set(&mut con, &c.set, &input_c, &sets_c);
    // Its lists are gone; its index and record stay for the grace period.
    let left = keys_of(&mut con, &partial[0]);
    assert!(
        !left.is_empty() && left.iter().all(|k| k.contains(":index:")),
        "{left:?}"
    );
    assert!(
        left.len() < written,
        "{} keys left of {written}",
        left.len()
    );
    let rec = record(&mut con, &partial[0]).expect("the record stays");
    let expires = rec.expires_at.expect("an end to its grace period");
    let now = chrono::Utc::now().timestamp();
    assert!((now + 590..=now + 600).contains(&expires), "{expires}");

    // A pipeline the dead publisher still had in flight lands after the deletion; a publish
    // within the grace period (here one that writes nothing) leaves the set as it is.
    let index: String = redis::cmd("GET")
        .arg(layout::index_key(&partial[0], 0))
        .query(&mut con)
        .unwrap();
    let late = format!(
        "{}:{}:{}",
        layout::PREFIX,
        partial[0],
        index.lines().next().unwrap()
    );
    let _: () = redis::cmd("SET")
        .arg(&late)
        .arg("[]")
        .query(&mut con)
        .unwrap();
    let again = publish(&target, &sets_c, &model(9), &opts(), |_| {})
        .await
        .unwrap();
    assert!(again.unchanged && again.removed.is_empty());
    assert_eq!(keys_of(&mut con, &partial[0]).len(), left.len() + 1);
    assert_eq!(record(&mut con, &partial[0]), Some(rec.clone()));

    // Once the grace period is over, the next publish deletes its lists again, the late key
    // among them, then its index (last, as when retiring: `UNLINK` fires `del`), and forgets
    // its record.
    let ended = SetRecord {
        expires_at: Some(now - 1),
        ..rec
    };
    let _: () = redis::cmd("HSET")
        .arg(layout::SETS_KEY)
        .arg(&partial[0])
        .arg(serde_json::to_string(&ended).unwrap())
        .query(&mut con)
        .unwrap();
    let events = KeyEvents::start(&server, "del");
    publish(&target, &sets_c, &model(9), &opts(), |_| {})
        .await
        .unwrap();
    let keys = events.finish();
    let ours = index_after_lists(&keys, &partial[0]);
    assert_eq!(ours.first().map(|k| k.as_str()), Some(late.as_str()));
    assert_lists_and_index_keys(&ours);
    assert!(
        keys_of(&mut con, &partial[0]).is_empty(),
        "partial set deleted"
    );
    assert_eq!(record(&mut con, &partial[0]), None);
    check_set(&mut con, &c.set, &input_c, &sets_c);
}

/// Readers loop GET current → one pipeline of GETs under that set (meta, popular, every
/// list) while sets are published one after another; every value must be there and belong to
/// the set named by the pointer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_only_ever_see_complete_sets() {
    let server = RedisServer::start();
    let (_, sets_a) = data::sets(1);
    let (_, sets_b) = data::sets(2);
    let target = RedisTarget::Single(server.url());
    publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let by_digest: Arc<HashMap<String, RecSets>> = Arc::new(HashMap::from([
        (sets_a.digest.clone(), sets_a.clone()),
        (sets_b.digest.clone(), sets_b.clone()),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let client = redis::Client::open(server.url()).unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (by_digest, stop, client) = (by_digest.clone(), stop.clone(), client.clone());
            tokio::spawn(async move {
                let mut con = client.get_multiplexed_async_connection().await.unwrap();
                let mut seen = HashSet::new();
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let set: String = redis::cmd("GET")
                        .arg(layout::CURRENT_KEY)
                        .query_async(&mut con)
                        .await
                        .unwrap();
                    let any = by_digest.values().next().unwrap();
                    let mut pipe = redis::pipe();
                    pipe.get(layout::meta_key(&set))
                        .get(layout::popular_key(&set));
                    let users: Vec<usize> = (0..any.users.len())
                        .filter(|&u| !any.users[u].is_empty())
                        .collect();
                    for &u in &users {
                        pipe.get(layout::user_key(&set, &any.user_ids[u]));
                    }
                    for b in &any.book_ids {
                        pipe.get(layout::item_key(&set, b));
                    }
                    let values: Vec<Option<String>> = pipe.query_async(&mut con).await.unwrap();
                    let missing = values.iter().filter(|v| v.is_none()).count();
                    assert_eq!(
                        missing, 0,
                        "{missing} keys missing under the current set {set}"
                    );
                    let values: Vec<String> = values.into_iter().flatten().collect();
                    let meta: SetMeta = serde_json::from_str(&values[0]).unwrap();
                    assert_eq!(meta.set, set);
                    let sets = &by_digest[&meta.digest];
                    let parse = |s: &str| serde_json::from_str::<RecListValue>(s).unwrap();
                    assert_eq!(parse(&values[1]), expected(sets, &sets.popular));
                    for (k, &u) in users.iter().enumerate() {
                        assert_eq!(
                            parse(&values[2 + k]),
                            expected(sets, &sets.users[u]),
                            "user {u} of {set} holds another set's list"
                        );
                    }
                    for (i, v) in values[2 + users.len()..].iter().enumerate() {
                        assert_eq!(parse(v), expected(sets, &sets.items[i]));
                    }
                    seen.insert(set);
                    reads += 1;
                }
                (seen, reads)
            })
        })
        .collect();

    let slow = PublishOptions {
        batch_size: 20,
        in_flight: 1,
        ..opts()
    };
    for (round, sets) in [&sets_b, &sets_a, &sets_b, &sets_a].into_iter().enumerate() {
        let s = publish(&target, sets, &model(7), &slow, |_| {})
            .await
            .unwrap();
        assert!(!s.unchanged, "round {round}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut seen = HashSet::new();
    let mut reads = 0;
    for r in readers {
        let (s, n) = r.await.expect("a reader saw a missing key or a mixed set");
        seen.extend(s);
        reads += n;
    }
    assert!(reads > 10, "only {reads} reads");
    assert!(
        seen.len() >= 2,
        "readers saw only {seen:?}: publishes did not overlap reads"
    );
}

#[tokio::test]
async fn a_second_publisher_is_locked_out() {
    let server = RedisServer::start();
    let mut con = server.sync();
    let _: () = redis::cmd("SET")
        .arg(layout::LOCK_KEY)
        .arg("pid-1-other")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let (_, sets) = data::sets(1);
    let err = publish(
        &RedisTarget::Single(server.url()),
        &sets,
        &model(7),
        &opts(),
        |_| {},
    )
    .await
    .unwrap_err();
    match &err {
        Error::Locked { key, holder } => {
            assert_eq!(key, layout::LOCK_KEY);
            assert_eq!(holder, "pid-1-other");
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(
        err.to_string().contains("{quire:recs:current}:lock"),
        "{err}"
    );
    assert_eq!(current(&mut con), None);
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 1, "nothing but the lock");
}

/// A publisher whose lock was taken from it (its lease ran out while it stalled) does not move
/// the pointer: the check and the move are one script.
#[tokio::test]
async fn a_publisher_that_lost_its_lock_does_not_move_the_pointer() {
    let server = RedisServer::start();
    let (_, sets) = data::sets(1);
    let target = RedisTarget::Single(server.url());
    let first = publish(&target, &sets, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let (_, other) = data::sets(2);
    let mut thief = server.sync();
    // The last progress report comes after every key and the meta are written, right before
    // the move: another publisher takes the lock then.
    let err = publish(&target, &other, &model(7), &opts(), |p| {
        if p.keys_done == p.keys_total {
            let _: () = redis::cmd("SET")
                .arg(layout::LOCK_KEY)
                .arg("pid-2-other")
                .query(&mut thief)
                .unwrap();
        }
    })
    .await
    .unwrap_err();
    match &err {
        Error::LockLost { step, .. } => assert_eq!(*step, "moving the pointer"),
        other => panic!("expected LockLost, got {other}"),
    }
    let mut con = server.sync();
    assert_eq!(current(&mut con), Some(first.set));
}

#[tokio::test]
async fn unreachable_redis_names_the_address() {
    let port = free_port(false);
    let (_, sets) = data::sets(1);
    let err = publish(
        &RedisTarget::Single(format!("redis://127.0.0.1:{port}")),
        &sets,
        &model(7),
        &opts(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot connect to redis at 127.0.0.1:{port}")),
        "{msg}"
    );
}
