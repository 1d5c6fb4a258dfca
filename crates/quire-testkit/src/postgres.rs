//! A PostgreSQL server for the tests of one process, and fresh databases on it.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use sqlx::{Connection, Executor};

/// Where Debian's `postgresql` package puts the server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// A PostgreSQL server in a temporary directory, on a free loopback port, trusting local
/// connections as `postgres`.
///
/// It lives as long as the test process: a watchdog shell holds the read end of a pipe whose
/// write end only this process holds; when the process exits (normally or not) the pipe
/// closes and the watchdog stops the server and removes its directory.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    // Never written; dropping it (at process exit) is the stop signal.
    _watchdog: Mutex<Child>,
}

impl PgServer {
    /// The server of this process, started on first use.
    ///
    /// # Panics
    /// When PostgreSQL is not installed or does not start: the reason names what to do.
    pub fn shared() -> &'static PgServer {
        match SERVER.get_or_init(PgServer::start) {
            Ok(server) => server,
            Err(reason) => panic!("{reason}"),
        }
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database named `<prefix>_<uuid>` and returns its URL. Its text
    /// sorts by ICU's `en-US` collation (`Adam < adamw < SGD`), as a team's database created
    /// with a language locale does, whatever this server's own locale (the environment's):
    /// code that orders text must say how.
    ///
    /// # Panics
    /// When the server refuses the connection or the `CREATE DATABASE`.
    pub async fn fresh_database(&self, prefix: &str) -> String {
        let db = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test postgres server");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )))
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        self.url(&db)
    }

    fn start() -> Result<PgServer, String> {
        let bin = Path::new(PG_BIN);
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            return Err(format!(
                "PostgreSQL 15 is not installed ({PG_BIN}/initdb and pg_ctl are missing): \
                 run scripts/setup.sh to install it (CI does); these tests run against a real \
                 PostgreSQL server"
            ));
        }
        let dir: PathBuf = tempfile::Builder::new()
            .prefix("quire-pg-")
            .tempdir()
            .map_err(|e| format!("creating the postgres directory: {e}"))?
            .keep();
        // initdb refuses to run as root: then the server runs as the package's `postgres` user.
        let root = is_root();
        if root {
            run(
                Command::new("chown").arg("-R").arg("postgres").arg(&dir),
                "chown",
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let d = dir.display();
        let initdb = format!(
            "{PG_BIN}/initdb -D {d}/data -U postgres --auth=trust -E UTF8 --no-sync >{d}/initdb.log 2>&1"
        );
        run(&mut as_postgres(root, &initdb), "initdb")
            .map_err(|e| format!("{e} (see {d}/initdb.log)"))?;
        let pg_ctl = format!(
            "{PG_BIN}/pg_ctl -D {d}/data -o \"-p {port} -k {d} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c max_connections=200\" -l {d}/server.log -w start >/dev/null"
        );
        run(&mut as_postgres(root, &pg_ctl), "pg_ctl start")
            .map_err(|e| format!("{e} (see {d}/server.log)"))?;
        let stop = format!("{PG_BIN}/pg_ctl -D {d}/data -m fast -w stop >/dev/null 2>&1");
        let stop = if root {
            format!("su postgres -c '{stop}'")
        } else {
            stop
        };
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!("cat >/dev/null; {stop}; rm -rf {d}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the postgres watchdog: {e}"))?;
        // Keep the pipe open; a flush checks it is.
        if let Some(stdin) = watchdog.stdin.as_mut() {
            stdin.flush().map_err(|e| format!("watchdog pipe: {e}"))?;
        }
        Ok(PgServer {
            port,
            _watchdog: Mutex::new(watchdog),
        })
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn as_postgres(root: bool, script: &str) -> Command {
    let mut cmd;
    if root {
        cmd = Command::new("su");
        cmd.args(["postgres", "-c", script]);
    } else {
        cmd = Command::new("sh");
        cmd.args(["-c", script]);
    }
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what} could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed with {status}"))
    }
}
