//! A minimal reader of the precomputed recommendations, written the way the Recommendation
//! Service reads them (`contracts/recs-redis.md`), with nothing but `redis` and `serde_json`:
//!
//! 1. `GET quire:recs:current` → the published set's id, e.g. `20251001T0800-cf-v7`;
//! 2. one pipeline: `GET quire:recs:{set}:user:{user_id}` (or `…:item:{book_id}`) and
//!    `GET quire:recs:{set}:popular`, so the fallback for a user without a personal list costs
//!    no third round trip.
//!
//! Both GETs name the set read in step 1, so the answer always comes from one complete set:
//! the publisher writes a set fully before moving the pointer and keeps the previous set for a
//! grace period (hours) after it moved.
//!
//! ```sh
//! cargo run -p quire-recs --example read_recs -- redis://127.0.0.1:6379 user usr_42
//! cargo run -p quire-recs --example read_recs -- redis://127.0.0.1:6379 item bk_3
//! cargo run -p quire-recs --example read_recs -- redis://127.0.0.1:6379 popular
//! ```
//!
//! It prints the set id, the key read, whether the popular fallback was used, and the list.

use redis::aio::ConnectionLike;
use serde::Deserialize;

/// One recommended book.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rec {
    pub book_id: String,
    pub score: f64,
}

/// The stored value: `{"items":[{"book_id":"bk_3","score":0.93},…]}`, best first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecList {
    pub items: Vec<Rec>,
}

/// What to read.
#[derive(Debug, Clone)]
pub enum Want {
    /// "For you": the user's list, or the popular list when the user has none.
    User(String),
    /// Books similar to / bought together with a book.
    Item(String),
    /// The popular list.
    Popular,
}

/// The answer and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub set: String,
    pub key: String,
    /// True when the user had no list and `popular` was returned.
    pub fallback: bool,
    pub list: RecList,
}

/// Reads one list. `Ok(None)`: nothing published yet, or (for a book) no list for that book.
pub async fn read(con: &mut impl ConnectionLike, want: &Want) -> anyhow::Result<Option<Answer>> {
    let set: Option<String> = redis::cmd("GET")
        .arg("quire:recs:current")
        .query_async(con)
        .await?;
    let Some(set) = set else { return Ok(None) };
    let popular = format!("quire:recs:{set}:popular");
    let key = match want {
        Want::User(id) => format!("quire:recs:{set}:user:{id}"),
        Want::Item(id) => format!("quire:recs:{set}:item:{id}"),
        Want::Popular => popular.clone(),
    };
    let (value, popular_value): (Option<String>, Option<String>) = redis::pipe()
        .get(&key)
        .get(&popular)
        .query_async(con)
        .await?;
    let (key, fallback, json) = match (value, want) {
        (Some(v), _) => (key, false, v),
        (None, Want::User(_)) => match popular_value {
            Some(p) => (popular, true, p),
            None => return Ok(None),
        },
        (None, _) => return Ok(None),
    };
    let list: RecList = serde_json::from_str(&json)?;
    Ok(Some(Answer {
        set,
        key,
        fallback,
        list,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: read_recs REDIS_URL (user USER_ID | item BOOK_ID | popular)";
    let (url, want) = match args.as_slice() {
        [url, kind, id] if kind == "user" => (url, Want::User(id.clone())),
        [url, kind, id] if kind == "item" => (url, Want::Item(id.clone())),
        [url, kind] if kind == "popular" => (url, Want::Popular),
        _ => anyhow::bail!(usage),
    };
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    match read(&mut con, &want).await? {
        None => println!("no list (nothing published, or no list for this book)"),
        Some(answer) => {
            println!("set {}  key {}", answer.set, answer.key);
            if answer.fallback {
                println!("(no personal list: popular fallback)");
            }
            for (rank, rec) in answer.list.items.iter().enumerate() {
                println!("{:>3}. {:<16} {:.4}", rank + 1, rec.book_id, rec.score);
            }
        }
    }
    Ok(())
}
