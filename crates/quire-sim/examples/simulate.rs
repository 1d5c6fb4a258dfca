//! Times a simulation run: `cargo run --release -p quire-sim --example simulate -- DAYS USERS [SEED] [OUT_DIR] [--gzip]`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gzip = args.iter().any(|a| a == "--gzip");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let mut cfg = quire_sim::SimConfig {
        gzip,
        ..Default::default()
    };
    if let Some(d) = pos.first() {
        cfg.days = d.parse()?;
    }
    if let Some(u) = pos.get(1) {
        cfg.users = u.parse()?;
    }
    if let Some(s) = pos.get(2) {
        cfg.seed = s.parse()?;
    }
    let out = pos.get(3).map_or_else(
        || std::env::temp_dir().join("quire-sim-example"),
        PathBuf::from,
    );
    let summary = quire_sim::simulate(&cfg, &out, &|d| eprint!("\rday {d}/{}", cfg.days))?;
    eprintln!();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    println!(
        "{:.0} events/s",
        summary.events as f64 / summary.seconds.max(1e-9)
    );
    Ok(())
}
