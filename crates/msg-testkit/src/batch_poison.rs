//! One poison notification in a batch of good ones: the good ones are handled once each, and
//! only the poison one keeps coming back (alone), up to its driver's redelivery cap.

use std::time::{Duration, Instant};

use msg_client::Notifier;
use msg_core::{Context, Priority, Target, Transport};
use msg_dispatch::{BatchResult, Handled, NotificationEndpoint, NotificationMessage, Requeue};
use msg_server::BatchNotificationListener;
use serde_json::json;

use crate::cases::{Case, CaseResult};
use crate::e2e::{Log, Running, err, wait_until};
use crate::env::Env;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            e2e_notify_batch_poison_goes_back_alone,
            [Notifications, Requeue]
        ),
        case!(
            e2e_notify_batch_handler_names_what_to_requeue,
            [Notifications, Requeue]
        ),
    ]
}

/// How many good notifications go with the poison one.
const GOOD: i64 = 7;
/// The `i` of the poison one.
const POISON: i64 = 5;
/// The batch size: all of them fit in one batch.
const BATCH: usize = 8;
/// The batch timeout: a poison coming back alone is handled after this.
const BATCH_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the good ones may take to be handled.
const GOOD_WITHIN: Duration = Duration::from_secs(15);
/// The poison is taken to be gone (dead-lettered) once it has not come back for this long.
const GONE_AFTER: Duration = Duration::from_secs(2);
/// How often the poison is watched coming back alone, at most (a driver without a
/// redelivery cap requeues it for ever).
const ALONE_AT_MOST: usize = 6;

/// How the batch handler of [`batch_with_a_poison`] answers a batch holding the poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonAnswer {
    /// `Requeue` for the whole batch: all the handler knows is that something in it is bad
    /// (oslo's only answer).
    WholeBatch,
    /// [`BatchResult::RequeueOnly`] naming the poison.
    Named,
}

/// What [`batch_with_a_poison`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonOutcome {
    /// The `i` of every good notification handled, sorted: `0..8` without `5`, once each,
    /// when all went well.
    pub handled: Vec<i64>,
    /// How often the handler got the poison alone in its batch.
    pub poison_alone: usize,
    /// How often the handler got the poison with a good one after a first refusal.
    pub poison_with_good_again: usize,
    /// How long after the last send every good one was handled.
    pub good_after: Duration,
    /// How many times the handler was called in all.
    pub calls: usize,
    /// Whether the poison stopped coming back (its driver's redelivery cap took it to the
    /// dead-letter queue), rather than the watch ending after it came back alone
    /// `ALONE_AT_MOST` (6) times.
    pub poison_gone: bool,
}

impl PoisonOutcome {
    /// The `i` of the good notifications: what [`PoisonOutcome::handled`] holds when each
    /// was handled exactly once.
    pub fn expected_handled() -> Vec<i64> {
        (0..=GOOD).filter(|i| *i != POISON).collect()
    }
}

/// One handler call: the `i` of its batch, whether it held the poison, and the `i` of the
/// messages it handled.
type Call = (Vec<i64>, bool, Vec<i64>);

fn is_poison(m: &NotificationMessage) -> bool {
    m.payload.get("poison").and_then(|v| v.as_bool()) == Some(true)
}

fn index(m: &NotificationMessage) -> i64 {
    m.payload.get("i").and_then(|v| v.as_i64()).unwrap_or(-1)
}

/// Sends 7 good Info notifications and one poison (`i` 5, payload `"poison": true`) to
/// `topic` through `notifier`, to a [`BatchNotificationListener`] on `listener` (batches of
/// 8, `allow_requeue`) whose handler refuses any batch holding the poison (answering as
/// `answer` says) and handles the others. Waits until the good ones are handled, then
/// watches the poison until it stops coming back or came back alone 6 times, and stops.
pub async fn batch_with_a_poison(
    listener: Transport,
    notifier: Transport,
    topic: &str,
    answer: PoisonAnswer,
) -> Result<PoisonOutcome, String> {
    let calls: Log<Call> = Log::default();
    let handler = {
        let calls = calls.clone();
        move |ms: Vec<NotificationMessage>| {
            let poisoned = ms.iter().any(is_poison);
            let all: Vec<i64> = ms.iter().map(index).collect();
            let (result, handled) = match (poisoned, answer) {
                (false, _) => (BatchResult::from(Handled), all.clone()),
                (true, PoisonAnswer::WholeBatch) => (BatchResult::from(Requeue), Vec::new()),
                (true, PoisonAnswer::Named) => (
                    BatchResult::requeue_matching(&ms, is_poison),
                    ms.iter().filter(|m| !is_poison(m)).map(index).collect(),
                ),
            };
            calls.push((all, poisoned, handled));
            futures::future::ready(result)
        }
    };
    let running = Running::new(
        BatchNotificationListener::builder(listener, [Target::topic(topic)], BATCH, BATCH_TIMEOUT)
            .allow_requeue(true)
            .endpoint(NotificationEndpoint::new().on_batch(Priority::Info, handler))
            .start()
            .await
            .map_err(err)?,
    );
    let n = Notifier::new(notifier)
        .publisher_id("testkit.poison")
        .topics([topic]);
    for i in 0..=GOOD {
        let payload = if i == POISON {
            json!({ "i": i, "poison": true })
        } else {
            json!({ "i": i })
        };
        n.info(&Context::new(), "e2e.event", payload)
            .await
            .map_err(err)?;
    }
    let sent = Instant::now();
    let handled = || -> Vec<i64> {
        let mut v: Vec<i64> = calls
            .snapshot()
            .into_iter()
            .flat_map(|(_, _, handled)| handled)
            .collect();
        v.sort_unstable();
        v
    };
    wait_until(
        || {
            format!(
                "good notifications handled: {:?} of {:?}; handler calls {:?}",
                handled(),
                PoisonOutcome::expected_handled(),
                calls.snapshot()
            )
        },
        GOOD_WITHIN,
        || handled().len() >= PoisonOutcome::expected_handled().len(),
    )
    .await?;
    let good_after = sent.elapsed();
    let alone = || {
        calls
            .snapshot()
            .iter()
            .filter(|(is, _, _)| is.as_slice() == [POISON])
            .count()
    };
    let mut last = (calls.len(), Instant::now());
    let poison_gone = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = calls.len();
        if now != last.0 {
            last = (now, Instant::now());
        }
        if alone() >= ALONE_AT_MOST {
            break false;
        }
        if last.1.elapsed() >= GONE_AFTER {
            break true;
        }
    };
    running.stop();
    let snapshot = calls.snapshot();
    let first_refusal = snapshot.iter().position(|(_, poisoned, _)| *poisoned);
    let poison_with_good_again = snapshot
        .iter()
        .skip(first_refusal.map_or(snapshot.len(), |f| f + 1))
        .filter(|(is, poisoned, _)| *poisoned && is.len() > 1)
        .count();
    Ok(PoisonOutcome {
        handled: handled(),
        poison_alone: alone(),
        poison_with_good_again,
        good_after,
        calls: snapshot.len(),
        poison_gone,
    })
}

async fn e2e_notify_batch_poison_goes_back_alone(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-poison");
    let listener = env.transport().await.map_err(err)?;
    let notifier = env.transport().await.map_err(err)?;
    let out = batch_with_a_poison(listener, notifier, &topic, PoisonAnswer::WholeBatch).await?;
    ensure!(
        out.handled == PoisonOutcome::expected_handled(),
        "each good notification should be handled once, whatever its batch-mate: {out:?}"
    );
    ensure!(
        out.poison_alone >= 2,
        "the poison should come back alone, again and again (up to the driver's cap): {out:?}"
    );
    Ok(())
}

async fn e2e_notify_batch_handler_names_what_to_requeue(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-named");
    let listener = env.transport().await.map_err(err)?;
    let notifier = env.transport().await.map_err(err)?;
    let out = batch_with_a_poison(listener, notifier, &topic, PoisonAnswer::Named).await?;
    ensure!(
        out.handled == PoisonOutcome::expected_handled(),
        "each good notification should be handled once: {out:?}"
    );
    ensure!(
        out.poison_with_good_again == 0 && out.poison_alone >= 1,
        "only the named notification should come back, alone: {out:?}"
    );
    Ok(())
}
