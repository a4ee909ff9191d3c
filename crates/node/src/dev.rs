//! `auction-node dev`: a local cluster of real server processes on loopback, for trying the
//! system out. Server 1 founds the cluster; the others join it (by broadcast on
//! `127.255.255.255`, where their discovery sockets bind, with server 1's address as an explicit
//! fallback). Ctrl-C (or SIGTERM) stops them all with SIGTERM and removes the temporary data
//! directories.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::cli::{DevArgs, FsyncArg};

/// Addresses of one dev server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevServer {
    /// Its name (`n1`, `n2`, ...).
    pub name: String,
    /// Peer address.
    pub peer: String,
    /// Client address.
    pub client: String,
    /// Data directory.
    pub dir: PathBuf,
}

/// The servers of a dev cluster rooted at `root`.
pub fn layout(args: &DevArgs, root: &std::path::Path) -> Vec<DevServer> {
    (1..=args.nodes)
        .map(|i| DevServer {
            name: format!("n{i}"),
            peer: format!("127.0.0.1:{}", args.base_port + i),
            client: format!("127.0.0.1:{}", args.base_port + 100 + i),
            dir: root.join(format!("n{i}")),
        })
        .collect()
}

/// The command line of server `i` (0-based) of `servers`.
pub fn server_args(args: &DevArgs, servers: &[DevServer], i: usize) -> Vec<String> {
    let s = &servers[i];
    let mut argv = vec![
        "run".to_string(),
        "--name".into(),
        s.name.clone(),
        "--data-dir".into(),
        s.dir.display().to_string(),
        "--peer-addr".into(),
        s.peer.clone(),
        "--client-addr".into(),
        s.client.clone(),
        "--discovery-port".into(),
        args.discovery_port.to_string(),
        "--broadcast".into(),
        "127.255.255.255".into(),
        "--dev-key".into(),
        // New servers become voters 2 s after catching up (10 s by default): the demo shows
        // a cluster of 3 at once.
        "--promote-after".into(),
        "2s".into(),
        "--fsync".into(),
        match args.fsync {
            FsyncArg::Always => "always".into(),
            FsyncArg::Never => "never".into(),
        },
    ];
    if i == 0 {
        // A fresh directory every time; a short probe still keeps a second dev cluster on
        // the same discovery port from founding a rival instance.
        argv.extend(["--bootstrap".into(), "--bootstrap-probe".into(), "1s".into()]);
    } else {
        argv.push("--join".into());
        argv.push(servers[0].peer.clone());
    }
    argv
}

/// Runs the dev cluster until Ctrl-C or until a server exits.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let temp;
    let root = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("auction-dev-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the auction-node executable: {e}"))?;
    let servers = layout(&args, &root);
    let mut children: Vec<Child> = Vec::new();
    for i in 0..servers.len() {
        let child = Command::new(&exe)
            .args(server_args(&args, &servers, i))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start server {}: {e}", servers[i].name))?;
        children.push(child);
    }
    print_banner(&servers, &root);
    // SIGTERM as well as Ctrl-C: a dev cluster stopped by `kill` must not leave its servers
    // running with their ports taken.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(anyhow::Error::from),
        _ = term.recv() => Ok(()),
        (status, i) = first_exit(&mut children) => {
            Err(anyhow::anyhow!("server {} exited ({status}); stopping the cluster", servers[i].name))
        }
    };
    stop(&mut children).await;
    outcome
}

async fn first_exit(children: &mut [Child]) -> (String, usize) {
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                return (status.to_string(), i);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM every server, wait up to 5 s each, then kill what is left.
async fn stop(children: &mut [Child]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for c in children.iter() {
        if let Some(pid) = c.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    for c in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(5), c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_banner(servers: &[DevServer], root: &std::path::Path) {
    println!("auction dev cluster: {} servers, data in {}", servers.len(), root.display());
    for s in servers {
        println!("  {:<3} peers {:<16} clients {}", s.name, s.peer, s.client);
    }
    println!();
    println!("connect a client:  cargo run -p auction-client -- --server {}", servers[0].client);
    // Dev servers' discovery sockets are bound to loopback (the key is public).
    println!("find the servers:  cargo run -p auction-client -- --broadcast 127.255.255.255 find");
    // The servers run with the development key and its derived admin token.
    let dev = crate::cli::KeyArgs { cluster_key_file: None, cluster_key: None, dev_key: true };
    if let Ok(key) = crate::settings::key_from(&dev) {
        let token = crate::settings::default_admin_token(&key);
        println!("admin token:       {token}  (auction-client --admin-token {token} ...)");
    }
    println!("stop:              Ctrl-C");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_server_bootstraps_and_the_others_join_it() {
        let args = DevArgs {
            nodes: 3,
            base_port: 7000,
            discovery_port: 7946,
            data_dir: None,
            fsync: FsyncArg::Always,
        };
        let servers = layout(&args, std::path::Path::new("/tmp/d"));
        assert_eq!(servers[2].client, "127.0.0.1:7103");
        let first = server_args(&args, &servers, 0);
        assert!(first.contains(&"--bootstrap".to_string()));
        let third = server_args(&args, &servers, 2);
        let join = third.iter().position(|a| a == "--join").unwrap();
        assert_eq!(third[join + 1], "127.0.0.1:7001");
    }
}
