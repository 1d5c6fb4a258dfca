//! Checks of a published set as a reader sees it.

use std::collections::HashSet;

use quire_recs::layout::{self, RecItem, RecListValue, SetMeta};
use quire_recs::{RecList, RecSets, RecsInput};
use redis::ConnectionLike;

/// The value a list must have in Redis.
pub fn expected(sets: &RecSets, list: &RecList) -> RecListValue {
    RecListValue {
        items: list
            .iter()
            .map(|&(j, score)| RecItem {
                book_id: sets.book_ids[j as usize].clone(),
                score,
            })
            .collect(),
    }
}

fn get(con: &mut dyn ConnectionLike, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

/// Sorted by score, at most `n` long, ids known, no duplicate, none of `excluded`.
pub fn check_list(value: &RecListValue, n: usize, known: &HashSet<&str>, excluded: &HashSet<&str>) {
    assert!(
        value.items.len() <= n,
        "{} items > N = {n}",
        value.items.len()
    );
    assert!(
        value.items.windows(2).all(|w| w[0].score >= w[1].score),
        "not sorted by score: {value:?}"
    );
    let mut seen = HashSet::new();
    for item in &value.items {
        assert!(
            known.contains(item.book_id.as_str()),
            "unknown book {}",
            item.book_id
        );
        assert!(seen.insert(&item.book_id), "{} twice", item.book_id);
        assert!(
            !excluded.contains(item.book_id.as_str()),
            "{} must be excluded",
            item.book_id
        );
    }
}

/// Every key of `set` holds exactly the lists of `sets`, the contract's invariants hold, and
/// the meta describes the set. Returns the meta.
pub fn check_set(
    con: &mut dyn ConnectionLike,
    set: &str,
    input: &RecsInput,
    sets: &RecSets,
) -> SetMeta {
    let known: HashSet<&str> = input.book_ids.iter().map(String::as_str).collect();
    for (u, user) in input.user_ids.iter().enumerate() {
        let value = get(con, &layout::user_key(set, user));
        if sets.users[u].is_empty() {
            assert_eq!(value, None, "{user} has no list, so no key");
            continue;
        }
        let value: RecListValue =
            serde_json::from_str(&value.unwrap_or_else(|| panic!("{set}: no list for {user}")))
                .expect("user list JSON");
        let (bought, _) = input.bought.row(u);
        let bought: HashSet<&str> = bought
            .iter()
            .map(|&b| input.book_ids[b as usize].as_str())
            .collect();
        check_list(&value, sets.n, &known, &bought);
        assert_eq!(value, expected(sets, &sets.users[u]), "{set} {user}");
    }
    for (i, book) in input.book_ids.iter().enumerate() {
        let value = get(con, &layout::item_key(set, book));
        if sets.items[i].is_empty() {
            assert_eq!(value, None);
            continue;
        }
        let value: RecListValue =
            serde_json::from_str(&value.unwrap_or_else(|| panic!("{set}: no list for {book}")))
                .expect("item list JSON");
        check_list(&value, sets.n, &known, &HashSet::from([book.as_str()]));
        assert_eq!(value, expected(sets, &sets.items[i]), "{set} {book}");
    }
    let popular: RecListValue =
        serde_json::from_str(&get(con, &layout::popular_key(set)).expect("popular"))
            .expect("popular JSON");
    check_list(&popular, sets.n, &known, &HashSet::new());
    assert_eq!(popular, expected(sets, &sets.popular));
    let meta: SetMeta =
        serde_json::from_str(&get(con, &layout::meta_key(set)).expect("meta")).expect("meta JSON");
    assert_eq!(meta.set, set);
    assert_eq!(meta.users, sets.users_with_lists() as u64);
    assert_eq!(meta.items, sets.items_with_lists() as u64);
    assert_eq!(meta.n, sets.n as u64);
    assert_eq!(meta.digest, sets.digest);
    meta
}

/// TTLs (seconds; -1 = none, -2 = missing) of every list key, popular and meta of `set`.
pub fn ttls(con: &mut dyn ConnectionLike, set: &str, sets: &RecSets) -> Vec<i64> {
    let users = sets
        .user_ids
        .iter()
        .zip(&sets.users)
        .filter(|(_, l)| !l.is_empty())
        .map(|(u, _)| layout::user_key(set, u));
    let items = sets
        .book_ids
        .iter()
        .zip(&sets.items)
        .filter(|(_, l)| !l.is_empty())
        .map(|(b, _)| layout::item_key(set, b));
    let mut keys: Vec<String> = users.chain(items).collect();
    keys.push(layout::popular_key(set));
    keys.push(layout::meta_key(set));
    keys.iter()
        .map(|k| redis::cmd("TTL").arg(k).query(con).expect("TTL"))
        .collect()
}
