//! The example reader (`examples/read_recs.rs`) against published sets.

#[allow(dead_code)] // its `main` is the example's entry point
#[path = "../../examples/read_recs.rs"]
mod read_recs;

use quire_recs::{RedisTarget, publish};
use read_recs::{Want, read};

use crate::data;
use crate::harness::RedisServer;
use crate::publish::{model, opts};

fn ids(list: &read_recs::RecList) -> Vec<&str> {
    list.items.iter().map(|r| r.book_id.as_str()).collect()
}

#[tokio::test]
async fn example_reader_follows_the_pointer_and_falls_back_to_popular() {
    let server = RedisServer::start();
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(read(&mut con, &Want::Popular).await.unwrap(), None);

    let (_, sets) = data::sets(1);
    let target = RedisTarget::Single(server.url());
    let a = publish(&target, &sets, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let book_ids = |list: &[(u32, f32)]| -> Vec<&str> {
        list.iter()
            .map(|&(j, _)| sets.book_ids[j as usize].as_str())
            .collect()
    };

    let user = read(&mut con, &Want::User("usr_0".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.set, a.set);
    assert_eq!(user.key, format!("quire:recs:{}:user:usr_0", a.set));
    assert!(!user.fallback);
    assert_eq!(ids(&user.list), book_ids(&sets.users[0]));
    // The JSON holds the shortest decimal that reads back as the same f32.
    assert_eq!(user.list.items[0].score as f32, sets.users[0][0].1);

    // usr_7 has all-zero factors (see data.rs): no personal list, popular instead.
    assert!(sets.users[7].is_empty());
    let unknown = read(&mut con, &Want::User("usr_7".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(unknown.fallback);
    assert_eq!(ids(&unknown.list), book_ids(&sets.popular));

    let item = read(&mut con, &Want::Item("bk_3".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&item.list), book_ids(&sets.items[3]));
    assert_eq!(
        read(&mut con, &Want::Item("bk_nope".into())).await.unwrap(),
        None
    );

    let (_, sets_b) = data::sets(2);
    let b = publish(&target, &sets_b, &model(8), &opts(), |_| {})
        .await
        .unwrap();
    let popular = read(&mut con, &Want::Popular).await.unwrap().unwrap();
    assert_eq!(popular.set, b.set);
}
