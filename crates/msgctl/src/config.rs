//! `--config-file` and `--config-dir`: a Python service's oslo.config files as the source of
//! the URL and of defaults the command line did not set.

use clap::ArgMatches;
use clap::parser::ValueSource;
use msg::Config;
use msg::config::ConfigFiles;

use crate::cli::{Cli, Command, NotifyDriverName};
use crate::errors::CliError;

/// Reads the files the command line names, in its order, and applies them: the URL (from
/// `[DEFAULT] transport_url`, for notify and listen the notifications' `transport_url`,
/// unless --url or MSG_TRANSPORT_URL gave one; either way with the driver's section and
/// `control_exchange` under its query), and unless given: call's --timeout
/// (`rpc_response_timeout`), serve's --executor (`executor_thread_pool_size`), notify's and
/// listen's --topic (`topics`) and notify's --driver (the first of `driver` that is
/// `messagingv2` or `messaging`). Nothing to do without files.
pub fn apply(cli: &mut Cli, matches: &ArgMatches) -> Result<(), CliError> {
    let Some(files) = files_in_order(matches)? else {
        return Ok(());
    };
    let config = Config::load(files).map_err(|e| CliError::usage(e.to_string()))?;
    // an empty --url or MSG_TRANSPORT_URL counts as unset
    let url_given = given(matches, "url")
        && matches
            .get_one::<String>("url")
            .is_some_and(|u| !u.trim().is_empty());
    // notify and listen use the notifications' transport, as oslo's notifiers and listeners
    let notifications = matches!(cli.command, Command::Notify(_) | Command::Listen(_));
    let url = if url_given {
        config
            .url_with_files(&cli.global.url)
            .map_err(|e| CliError::usage(e.to_string()))?
    } else if notifications {
        config.notification_transport_url().clone()
    } else {
        config.transport_url().clone()
    };
    cli.global.url = url.to_string_with_password();
    let sub = matches.subcommand().map(|(_, m)| m);
    let unset = |id: &str| !sub.is_some_and(|m| given(m, id));
    match &mut cli.command {
        Command::Call(args) if unset("timeout") => {
            args.timeout = Some(config.rpc_response_timeout());
        }
        Command::Serve(args) if unset("executor") => {
            args.executor = config.executor();
        }
        Command::Notify(args) => {
            if unset("topics") {
                args.topics = config.notification_topics().to_vec();
            }
            let configured = config
                .notification_drivers()
                .iter()
                .find_map(|d| match d.as_str() {
                    "messagingv2" => Some(NotifyDriverName::Messagingv2),
                    "messaging" => Some(NotifyDriverName::Messaging),
                    _ => None,
                });
            if let (true, Some(driver)) = (unset("driver"), configured) {
                args.driver = driver;
            }
        }
        Command::Listen(args) if unset("topics") => {
            args.topics = config.notification_topics().to_vec();
        }
        _ => {}
    }
    Ok(())
}

/// Whether the user set the argument (on the command line or through its variable).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The files and directories as the command line orders them (a directory's files come
/// after the files named before it, as oslo.config reads them); `None` when there are none.
fn files_in_order(matches: &ArgMatches) -> Result<Option<ConfigFiles>, CliError> {
    let mut given: Vec<(usize, bool, std::path::PathBuf)> = Vec::new();
    for (id, is_dir) in [("config_file", false), ("config_dir", true)] {
        if let (Some(values), Some(indices)) = (
            matches.get_many::<std::path::PathBuf>(id),
            matches.indices_of(id),
        ) {
            given.extend(indices.zip(values).map(|(i, p)| (i, is_dir, p.clone())));
        }
    }
    if given.is_empty() {
        return Ok(None);
    }
    given.sort_by_key(|(i, _, _)| *i);
    let mut files = ConfigFiles::new();
    for (_, is_dir, path) in given {
        files = if is_dir {
            files.dir(&path)
        } else {
            files.file(&path)
        }
        .map_err(|e| CliError::usage(e.to_string()))?;
    }
    Ok(Some(files))
}
