//! The Redis layout of `contracts/recs-redis.md`: key names and the JSON list value, plus the
//! publisher's own bookkeeping keys (which readers ignore).

use redis::{RedisWrite, ToRedisArgs, ToSingleRedisArg};
use serde::{Deserialize, Serialize};

/// Prefix of every key.
pub const PREFIX: &str = "quire:recs";
/// The pointer to the published set: `quire:recs:current`.
pub const CURRENT_KEY: &str = "quire:recs:current";
/// The publisher's lock (value = the holder's token, with a lease). Its hash tag is the
/// pointer's whole name, so on a cluster it lives in the pointer's slot and one script can
/// check the lock and move the pointer together.
pub const LOCK_KEY: &str = "{quire:recs:current}:lock";
/// The publisher's index of sets: a hash `set id → JSON` [`SetRecord`].
pub const SETS_KEY: &str = "quire:recs:sets";

/// `quire:recs:{set}:user:{user_id}`.
pub fn user_key(set: &str, user_id: &str) -> String {
    format!("{PREFIX}:{set}:user:{user_id}")
}

/// `quire:recs:{set}:item:{book_id}`.
pub fn item_key(set: &str, book_id: &str) -> String {
    format!("{PREFIX}:{set}:item:{book_id}")
}

/// `quire:recs:{set}:popular`.
pub fn popular_key(set: &str) -> String {
    format!("{PREFIX}:{set}:popular")
}

/// `quire:recs:{set}:meta`.
pub fn meta_key(set: &str) -> String {
    format!("{PREFIX}:{set}:meta")
}

/// `quire:recs:{set}:index:{chunk}`: part of the list of the set's `user:` and `item:` key
/// suffixes, one per line, written before any list so a partial set can always be found.
pub fn index_key(set: &str, chunk: usize) -> String {
    format!("{PREFIX}:{set}:index:{chunk}")
}

/// One entry of a list value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecItem {
    pub book_id: String,
    pub score: f32,
}

/// A list value as stored: `{"items":[{"book_id":"bk_3","score":0.93},…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecListValue {
    pub items: Vec<RecItem>,
}

/// Each book's `{"book_id":"…","score":` as JSON bytes, encoded once per publish.
pub(crate) fn entry_prefixes(book_ids: &[String]) -> Vec<Vec<u8>> {
    book_ids
        .iter()
        .map(|id| {
            let mut prefix = b"{\"book_id\":".to_vec();
            // Writing a string to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut prefix, id);
            prefix.extend_from_slice(b",\"score\":");
            prefix
        })
        .collect()
}

/// A list of `(book index, score)` written as the contract's JSON value straight into the
/// command buffer.
///
/// Assembled by hand around pieces serde_json encodes (the escaped ids, once per book in
/// [`entry_prefixes`], and each score): on the benchmark's 5 million entries, serialising a
/// struct per entry spent most of its time re-escaping the same 10,000 ids.
pub(crate) struct ListJson<'a> {
    pub list: &'a [(u32, f32)],
    /// From [`entry_prefixes`].
    pub prefixes: &'a [Vec<u8>],
}

impl ListJson<'_> {
    fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(b"{\"items\":[")?;
        for (k, &(j, score)) in self.list.iter().enumerate() {
            if k > 0 {
                w.write_all(b",")?;
            }
            w.write_all(&self.prefixes[j as usize])?;
            serde_json::to_writer(&mut *w, &score)?;
            w.write_all(b"}")?;
        }
        w.write_all(b"]}")
    }
}

impl ToRedisArgs for ListJson<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        // Writing to the command's buffer cannot fail, and every score is finite (checked by
        // `compute_recs`), so there is no error to report.
        let _ = self.write(&mut out.writer_for_next_arg());
    }
}

impl ToSingleRedisArg for ListJson<'_> {}

/// `quire:recs:{set}:meta`: what the set is (the contract's fields first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMeta {
    pub set: String,
    /// Registered model name.
    pub model: String,
    /// Registered model version.
    pub version: u64,
    /// Registry run that produced the model version.
    pub run_id: String,
    /// RFC 3339 UTC time the publish started.
    pub created_at: String,
    /// Users with a `user:` key.
    pub users: u64,
    /// Books with an `item:` key.
    pub items: u64,
    /// The N of the lists (each holds at most N items).
    pub n: u64,
    /// Items in the popular list.
    pub popular: u64,
    /// Every key of the set except `meta` itself (lists, popular, index chunks).
    pub keys: u64,
    /// SHA-256 of the lists ([`crate::RecSets::digest`]).
    pub digest: String,
    /// Number of `index:{chunk}` keys.
    pub index_chunks: u64,
}

/// State of a set in [`SETS_KEY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetState {
    /// Being written (or left half-written by a publish that died; once a later publish has
    /// deleted its lists, `expires_at` is when its index and record go too).
    Building,
    /// The pointer moved to it.
    Published,
    /// No longer current; its keys expire at `expires_at`.
    Retired,
}

/// One field of [`SETS_KEY`]: the publisher's record of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRecord {
    pub state: SetState,
    pub model: String,
    pub version: u64,
    pub digest: String,
    pub index_chunks: u64,
    pub started_at: String,
    /// Unix seconds after which a retired set's keys are gone, or a deleted half-written
    /// set's index and record may go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_is_the_contract_value() {
        let ids = vec!["bk_0".to_string(), "bk_\"1\"".to_string(), "bk_2".into()];
        let prefixes = entry_prefixes(&ids);
        let bytes = ListJson {
            list: &[(2, 0.93), (1, -0.5)],
            prefixes: &prefixes,
        }
        .to_redis_args()
        .concat();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"items":[{"book_id":"bk_2","score":0.93},{"book_id":"bk_\"1\"","score":-0.5}]}"#
        );
        let back: RecListValue = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.items[1].book_id, "bk_\"1\"");
        let empty = ListJson {
            list: &[],
            prefixes: &prefixes,
        }
        .to_redis_args()
        .concat();
        assert_eq!(empty, br#"{"items":[]}"#);
    }

    #[test]
    fn keys_follow_the_contract() {
        assert_eq!(
            user_key("20251001T0800-cf-v7", "usr_42"),
            "quire:recs:20251001T0800-cf-v7:user:usr_42"
        );
        assert_eq!(item_key("s", "bk_3"), "quire:recs:s:item:bk_3");
        assert_eq!(popular_key("s"), "quire:recs:s:popular");
        assert_eq!(meta_key("s"), "quire:recs:s:meta");
        assert_eq!(index_key("s", 3), "quire:recs:s:index:3");
    }
}
