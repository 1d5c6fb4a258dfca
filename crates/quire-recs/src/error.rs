//! The crate's error type.

/// Everything that can go wrong while computing or publishing recommendation sets.
///
/// Messages say what and where: the Redis address for connection failures, the step of the
/// publish for command failures, the field for bad input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input does not hold together (shapes, ids, counts).
    #[error("recs input: {0}")]
    Input(String),
    /// A [`crate::RecsConfig`] or [`crate::PublishOptions`] field out of its range.
    #[error("recs config: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    /// The collaborative-filtering kernels refused the model or the exclusions.
    #[error("recs compute: {0}")]
    Cf(#[from] quire_cf::CfError),
    /// No connection could be opened to Redis.
    #[error("cannot connect to redis at {addr}: {source}")]
    Connect {
        addr: String,
        source: redis::RedisError,
    },
    /// A Redis command failed during a publish step.
    #[error("redis at {addr} failed while {step}: {source}")]
    Redis {
        addr: String,
        step: &'static str,
        source: redis::RedisError,
    },
    /// Another publisher holds the lock key.
    #[error(
        "another publish is running: {key} is held by {holder:?} (it expires after the holder's lease if that publisher died)"
    )]
    Locked { key: String, holder: String },
    /// The lock's lease ran out during the publish and someone else may have taken it. Before
    /// the move the pointer stays where it was; after it (retiring the previous set), the
    /// error is the summary's `after_move_error` and the new set is live.
    #[error("lost the publish lock {key} while {step}")]
    LockLost { key: String, step: &'static str },
    /// Fewer keys were acknowledged than the set needs; the pointer was not moved.
    #[error("set {set} is incomplete: redis acknowledged {acknowledged} of {expected} keys")]
    Incomplete {
        set: String,
        acknowledged: u64,
        expected: u64,
    },
    /// A value stored by a previous publish (meta, set index) is not what this crate writes.
    #[error("unexpected value at redis key {key}: {problem}")]
    Corrupt { key: String, problem: String },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Config {
            field,
            problem: problem.into(),
        }
    }
}
