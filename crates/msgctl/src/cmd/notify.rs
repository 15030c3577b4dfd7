//! `msgctl notify`: N notifications, each confirmed, then a summary.

use std::sync::Arc;
use std::time::Instant;

use msg::notify::{Notifier, NotifyDriver};
use msg::{Context, EnvelopeVersion, Notification, Retry, Target, Transport};
use serde::Serialize;

use crate::cli::{Global, NotifyArgs, NotifyDriverName};
use crate::cmd::rpc::close;
use crate::cmd::stdout_error;
use crate::errors::CliError;
use crate::input;
use crate::output;

#[derive(Serialize)]
struct Summary {
    sent: u64,
    failed: u64,
    seconds: f64,
}

pub async fn run(global: &Global, args: NotifyArgs) -> Result<(), CliError> {
    let context = input::context(args.context.as_deref())?;
    let payload = input::json_value("PAYLOAD-JSON", &args.payload)?;
    let transport = input::open_transport(global).await?;
    let notifier = notifier(&transport, global, args.driver)?
        .publisher_id(&args.publisher_id)
        .topics(args.topics.iter().cloned());

    let started = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut first_failure: Option<msg::Error> = None;
    for _ in 0..args.count {
        match notifier
            .notify(&context, &args.event_type, args.priority, &payload)
            .await
        {
            Ok(()) => sent += 1,
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert(e);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    close(&transport).await;

    if global.json {
        output::json_line(&Summary {
            sent,
            failed,
            seconds,
        })
        .map_err(stdout_error)?;
    } else {
        output::note(&format!("sent {sent}, failed {failed} in {seconds:.2} s"));
    }
    match first_failure {
        None => Ok(()),
        Some(e) => Err(CliError::failed(format!(
            "{failed} of {} notifications not sent; the first failure: {}",
            args.count,
            CliError::from(e).line
        ))),
    }
}

/// A notifier on the transport with the notify driver named, sending to the exchange of
/// `--exchange` when it is given (else to the driver's control exchange).
pub fn notifier(
    transport: &Transport,
    global: &Global,
    driver: NotifyDriverName,
) -> Result<Notifier, CliError> {
    let notifier = Notifier::new(transport.clone());
    Ok(match &global.exchange {
        // oslo's drivers, by name
        None => notifier.driver_names([driver.name()])?,
        Some(exchange) => notifier.driver(Arc::new(ExchangeDriver {
            transport: transport.clone(),
            exchange: exchange.clone(),
            driver,
        })),
    })
}

/// `messagingv2` / `messaging` sending to the exchange of `--exchange` instead of the
/// driver's control exchange.
#[derive(Debug)]
struct ExchangeDriver {
    transport: Transport,
    exchange: String,
    driver: NotifyDriverName,
}

#[async_trait::async_trait]
impl NotifyDriver for ExchangeDriver {
    fn name(&self) -> &str {
        self.driver.name()
    }

    async fn notify(
        &self,
        context: &Context,
        notification: &Notification,
        topics: &[String],
        retry: Retry,
    ) -> msg::Result<()> {
        let version = match self.driver {
            NotifyDriverName::Messagingv2 => EnvelopeVersion::V2,
            NotifyDriverName::Messaging => EnvelopeVersion::V1,
        };
        for topic in topics {
            let target = Target::topic(topic).with_exchange(&self.exchange);
            self.transport
                .driver()
                .send_notification(&target, context, notification, version, retry)
                .await?;
        }
        Ok(())
    }
}
