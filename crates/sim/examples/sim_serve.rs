//! Serves the seed case for manual poking with kubectl:
//! `cargo run -p baton-sim --example sim_serve -- /tmp/sim.kubeconfig`.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("sim.kubeconfig"), PathBuf::from);
    let sim = baton_sim::Sim::new(baton_sim::SimConfig::default());
    let served = sim.serve().await?;
    served.write_kubeconfig(&path)?;
    println!(
        "{}",
        serde_json::json!({"kubeconfig": path, "apiserver": served.apiserver, "arbiter": served.arbiter})
    );
    tokio::signal::ctrl_c().await?;
    served.shutdown();
    Ok(())
}
