//! A c10d process group of one rank (TCPStore on 127.0.0.1, Gloo): join, all-reduce, barrier.
//! Under torchrun (or Slurm, Open MPI) the same code joins the launcher's world instead.
//! `cargo run -p inheritune-dist --example world_of_one`

use std::time::Duration;

use inheritune_dist::{LaunchEnv, ProcessGroup};
use tch::Tensor;

fn main() -> inheritune_dist::Result<()> {
    let env = match LaunchEnv::from_env()? {
        Some(env) => env,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or(29500);
            LaunchEnv {
                rank: 0,
                world: 1,
                local_rank: 0,
                local_world: 1,
                master_addr: "127.0.0.1".into(),
                master_port: port,
                serve_store: true,
                store_prefix: "example/".into(),
            }
        }
    };
    let pg = ProcessGroup::join(&env, Duration::from_secs(30), false)?;
    let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    pg.all_reduce_sum(&t)?;
    pg.barrier()?;
    println!(
        "rank {} of {}: all-reduced {:?}",
        pg.rank(),
        pg.world(),
        Vec::<f32>::try_from(&t).unwrap_or_default()
    );
    Ok(())
}
