//! The floor under any request/response service on this machine: an echo server and C
//! closed-loop clients over loopback TCP, in two processes, each on a tokio current-thread
//! runtime (as the node and the bench are), 64-byte requests and 48-byte answers, nothing
//! else. Whatever a real request costs on top of this (ordering, fsync, state machine,
//! forwarding) is ours; this much is the kernel's and the machine's.
//!
//! ```sh
//! cargo build --release -p auction-bench --example loopback_floor
//! E=target/release/examples/loopback_floor
//! $E server 47001 & S=$!
//! $E client 47001 64 8 & C=$!; sleep 3
//! perf stat -e task-clock -p $S -- sleep 4 & perf stat -e task-clock -p $C -- sleep 4
//! wait $C; kill $S
//! ```
//!
//! CPU per round trip = (task-clock of both, in ms) × 1000 / 4 s / round trips per second.
//! docs/performance.md ("Fourth round") has the figures for the development machine.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a probe that reports on the terminal

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: usize = 64;
const ANSWER: usize = 48;

fn main() -> std::process::ExitCode {
    match probe() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loopback_floor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn probe() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let number = |i: usize, what: &str| -> anyhow::Result<u64> {
        let text = args.get(i).with_context(|| format!("missing {what}"))?;
        text.parse().with_context(|| format!("{what}: not a number: {text}"))
    };
    match args.first().map(String::as_str) {
        Some("server") => {
            let port = u16::try_from(number(1, "PORT")?)?;
            rt.block_on(serve(port))
        }
        Some("client") => {
            let port = u16::try_from(number(1, "PORT")?)?;
            let clients = number(2, "CLIENTS")?;
            let secs = number(3, "SECS")?.max(1);
            let done = rt.block_on(load(port, clients, Duration::from_secs(secs)))?;
            println!("{} round trips/s with {clients} clients", done / secs);
            Ok(())
        }
        _ => bail!("usage: loopback_floor server PORT | loopback_floor client PORT CLIENTS SECS"),
    }
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = [0u8; REQUEST];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf[..ANSWER]).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn load(port: u16, clients: u64, run: Duration) -> anyhow::Result<u64> {
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        tasks.push(tokio::spawn(async move {
            let (request, mut answer) = ([1u8; REQUEST], [0u8; ANSWER]);
            let mut done = 0u64;
            while Instant::now() < end {
                stream.write_all(&request).await?;
                stream.read_exact(&mut answer).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}
