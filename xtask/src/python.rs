//! The Python virtualenv with oslo.messaging used by the interop tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The oslo.messaging release the interop tests are written against, with its
/// `tracing-http` extra (the OpenTelemetry SDK and OTLP/HTTP exporter its tracing imports;
/// the cross-language trace test turns oslo's tracing on).
pub const OSLO_MESSAGING: &str = "oslo.messaging[tracing-http]==18.3.1";

/// What pip installs into the venv: oslo.messaging, and the oslo.metrics collector the
/// metrics test hands msg's datagrams to (oslo.messaging needs it too; pinned to the release
/// the test was written against).
pub const PACKAGES: [&str; 2] = [OSLO_MESSAGING, "oslo.metrics==0.17.0"];

/// The imports that say the venv is ready: oslo.messaging with its tracing's OpenTelemetry
/// SDK and OTLP/HTTP exporter, and oslo.metrics. A venv made before one of them was asked for
/// fails this and gets it from pip.
const IMPORTS: &str = "import oslo_messaging, oslo_metrics, opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http";

const VENV_LIMIT: Duration = Duration::from_secs(180);
const PIP_LIMIT: Duration = Duration::from_secs(15 * 60);
const IMPORT_LIMIT: Duration = Duration::from_secs(60);

/// The directory whose presence switches the interop venv on.
pub fn interop_dir(root: &Path) -> PathBuf {
    root.join("crates/msg-driver-amqp/tests/interop")
}

/// Whether `cargo xtask test` should prepare the venv: `MSG_INTEROP=1` forces
/// it, `MSG_INTEROP=0` turns it off, otherwise it follows the presence of the
/// interop test directory.
pub fn wanted(root: &Path) -> bool {
    util::env_flag("MSG_INTEROP").unwrap_or_else(|| interop_dir(root).is_dir())
}

/// The virtualenv location: `<workspace>/target/interop-venv`.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join("target").join("interop-venv")
}

/// Makes sure `target/interop-venv` exists and can import oslo.messaging (with its
/// tracing) and oslo.metrics,
/// creating it with `python3 -m venv` and installing [`PACKAGES`] with pip
/// if needed. Returns the absolute path of the venv's python (not resolved
/// through its symlink, so that it keeps using the venv).
pub fn ensure_python_venv(root: &Path) -> Result<PathBuf> {
    let venv = venv_dir(root);
    let python = venv.join("bin").join("python");
    if imports_oslo(&python) {
        return Ok(python);
    }

    let runs = util::succeeds_quietly(Command::new(&python).args(["-c", ""]), IMPORT_LIMIT);
    if !runs {
        let python3 = util::find_program("python3", &["/usr/bin/python3"])
            .context("python3 not found on PATH (needed to create the interop venv)")?;
        eprintln!("interop: creating {} ...", venv.display());
        let mut cmd = Command::new(python3);
        // --clear: a half-made or stale venv (e.g. after a python upgrade) is rebuilt.
        cmd.args(["-m", "venv", "--clear"])
            .arg(&venv)
            .stdin(Stdio::null());
        let shown = util::display_cmd(&cmd);
        let status = util::run_with_deadline(&mut cmd, VENV_LIMIT)?;
        if !status.success() {
            bail!("`{shown}` failed ({status}); on Debian/Ubuntu install the python3-venv package");
        }
    }

    eprintln!(
        "interop: pip install {} into {} ...",
        PACKAGES.join(" "),
        venv.display()
    );
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(["--no-input", "--timeout", "60"])
        .args(PACKAGES)
        .env("PIP_NO_INPUT", "1")
        .stdin(Stdio::null());
    let shown = util::display_cmd(&pip);
    let status = util::run_with_deadline(&mut pip, PIP_LIMIT)?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    if !imports_oslo(&python) {
        bail!(
            "`{} -c \"{IMPORTS}\"` still fails after pip install",
            python.display()
        );
    }
    Ok(python)
}

fn imports_oslo(python: &Path) -> bool {
    python.is_file()
        && util::succeeds_quietly(Command::new(python).args(["-c", IMPORTS]), IMPORT_LIMIT)
}
