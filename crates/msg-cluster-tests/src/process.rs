//! Processes of a cluster node: a bounded command, kill -9 by pid file, the start script
//! run again, and readiness polls.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::net::TcpStream;
use tokio::process::Command;

/// How often a wait looks again.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// Runs `program args`, bounded by `within`; its stdout when it exits with 0.
pub(crate) async fn output(program: &Path, args: &[&str], within: Duration) -> Result<String> {
    let shown = || format!("{} {}", program.display(), args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| anyhow!("`{}` took over {within:?}", shown()))?
        .with_context(shown)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            shown(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pid in `file` (a node's pid file).
pub(crate) fn read_pid(file: &Path) -> Result<u32> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds no pid: {:?}", file.display(), text.trim()))
}

/// Whether process `pid` exists (and is not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    state_and_parent(pid).is_some_and(|(state, _)| state != "Z" && state != "X")
}

/// The state and parent of process `pid` (from `/proc/PID/stat`).
fn state_and_parent(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": the command name may hold spaces and parentheses
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_owned();
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// A live child of `parent` whose command name is `comm`.
pub(crate) fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            alive(pid)
                && state_and_parent(pid).is_some_and(|(_, p)| p == parent)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == comm)
        })
}

/// Sends SIGKILL to process `pid` and waits (bounded) until it is gone.
pub(crate) async fn kill_9(pid: u32) -> Result<u32> {
    output(
        Path::new("kill"),
        &["-9", &pid.to_string()],
        Duration::from_secs(5),
    )
    .await?;
    wait_until(
        Duration::from_secs(10),
        &format!("pid {pid} to exit"),
        || {
            let gone = !alive(pid);
            async move { Ok(gone) }
        },
    )
    .await?;
    Ok(pid)
}

/// Runs a node's start script again, in a session of its own (as `setsid start &`): the
/// node outlives the test process if need be, and a kill of the test does not reach it.
/// Returns once the script has written its pid to `launcher_file` (so the node counts as
/// started from then on, and is never started twice).
pub(crate) async fn run_start_script(script: &Path, launcher_file: &Path) -> Result<()> {
    if !script.is_file() {
        bail!("no start script at {}", script.display());
    }
    // setsid execs the script in the process it is given (that process leads no group),
    // and the script writes its own pid ($$) before it execs the broker: the child's pid
    let child = std::process::Command::new("setsid")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let pid = child.id();
    wait_until(
        Duration::from_secs(10),
        &format!("{} to write pid {pid}", launcher_file.display()),
        || {
            let written = read_pid(launcher_file).is_ok_and(|p| p == pid);
            async move { Ok(written) }
        },
    )
    .await?;
    Ok(())
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub(crate) async fn listening(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Polls `ready` until it says yes or `within` runs out (then an error saying what was
/// awaited and the last failure); how long it took.
pub(crate) async fn wait_until<F, Fut>(
    within: Duration,
    what: &str,
    mut ready: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    loop {
        let last = match ready().await {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => String::from("not yet"),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= within {
            bail!("waited {within:?} for {what}: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}
