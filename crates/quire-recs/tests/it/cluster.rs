//! Publishing to a real 3-master Redis Cluster started by the harness.

use quire_recs::layout::{self, SetRecord, SetState};
use quire_recs::{RedisTarget, publish};

use crate::check::{check_set, ttls};
use crate::data;
use crate::harness::RedisCluster;
use crate::publish::{KeyEvents, current, index_after_lists, model, opts, small_index};

/// A synchronous connection to the whole cluster, for checks.
fn connect(cluster: &RedisCluster) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn cluster_publish_spreads_keys_and_moves_the_pointer_last() {
    let cluster = RedisCluster::start();
    let target = RedisTarget::Cluster(cluster.urls());
    let (input_a, sets_a) = data::sets(1);
    let (input_b, sets_b) = data::sets(2);

    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let mut con = connect(&cluster);
    assert_eq!(current(&mut con), Some(a.set.clone()));
    check_set(&mut con, &a.set, &input_a, &sets_a);

    // The keys are spread over the three masters (no hash tags), and each node holds only
    // keys of its own slots (the per-slot pipelines went to the right node).
    let mut total = 0u64;
    for node in &cluster.nodes {
        let mut n = node.sync();
        let size: u64 = redis::cmd("DBSIZE").query(&mut n).unwrap();
        assert!(
            size as f64 > a.keys as f64 * 0.2,
            "node {} holds {size} keys",
            node.port
        );
        total += size;
    }
    // Every key of the set plus the pointer and the set records.
    assert_eq!(total, a.keys + 2);

    let b = publish(&target, &sets_b, &model(8), &opts(), |_| {})
        .await
        .unwrap();
    assert_eq!(b.previous.as_deref(), Some(a.set.as_str()));
    assert_eq!(current(&mut con), Some(b.set.clone()));
    check_set(&mut con, &b.set, &input_b, &sets_b);
    assert!(ttls(&mut con, &b.set, &sets_b).iter().all(|&t| t == -1));
    let old = ttls(&mut con, &a.set, &sets_a);
    assert!(old.iter().all(|&t| t > 590 && t <= 600), "{old:?}");
    let rec: String = redis::cmd("HGET")
        .arg(layout::SETS_KEY)
        .arg(&a.set)
        .query(&mut con)
        .unwrap();
    let rec: SetRecord = serde_json::from_str(&rec).unwrap();
    assert_eq!(rec.state, SetState::Retired);

    // Idempotent on a cluster too.
    let again = publish(&target, &sets_b, &model(8), &opts(), |_| {})
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.set, b.set);
}

#[tokio::test]
async fn a_cluster_node_given_as_one_server_is_published_to_as_its_cluster() {
    let cluster = RedisCluster::start();
    let (input_a, sets_a) = data::sets(1);
    let (input_b, sets_b) = data::sets(2);
    let target = RedisTarget::Single(cluster.urls()[1].clone());
    let a = publish(&target, &sets_a, &model(7), &opts(), |_| {})
        .await
        .unwrap();
    let mut con = connect(&cluster);
    assert_eq!(current(&mut con), Some(a.set.clone()));
    check_set(&mut con, &a.set, &input_a, &sets_a);
    // The next publish retires it through the cluster too.
    let b = publish(&target, &sets_b, &model(8), &opts(), |_| {})
        .await
        .unwrap();
    assert_eq!(b.retired, vec![a.set.clone()]);
    assert_eq!(current(&mut con), Some(b.set.clone()));
    check_set(&mut con, &b.set, &input_b, &sets_b);
    let old = ttls(&mut con, &a.set, &sets_a);
    assert!(old.iter().all(|&t| t > 590 && t <= 600), "{old:?}");
}

#[tokio::test]
async fn on_each_node_a_retired_sets_index_expires_after_its_lists() {
    // The batches of a cluster follow hash slots, not the key order: the index keys must still
    // wait for every list, on every node.
    let cluster = RedisCluster::start();
    let target = RedisTarget::Cluster(cluster.urls());
    let (_, sets_a) = data::sets(1);
    let (_, sets_b) = data::sets(2);
    let a = publish(&target, &sets_a, &model(7), &small_index(), |_| {})
        .await
        .unwrap();
    let events: Vec<KeyEvents> = cluster
        .nodes
        .iter()
        .map(|node| KeyEvents::start(node, "expire"))
        .collect();
    let b = publish(&target, &sets_b, &model(8), &small_index(), |_| {})
        .await
        .unwrap();
    assert_eq!(b.retired, vec![a.set.clone()]);
    let mut seen = 0;
    for node in events {
        let keys = node.finish();
        let ours = index_after_lists(&keys, &a.set);
        assert!(ours.iter().any(|k| k.contains(":index:")), "{ours:?}");
        seen += ours.len() as u64;
    }
    assert_eq!(seen, a.keys);
}
