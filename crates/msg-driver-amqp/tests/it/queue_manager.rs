//! `use_queue_manager` over the real broker: reply and fanout queues named
//! `<hostname>:<processname>:<n>`, unique among the live transports of a host, the same
//! after a restart, the fanout queue kept across it (as oslo).

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use msg_client::RpcClient;
use msg_core::{Context, Target};
use msg_dispatch::{Endpoint, HandlerError};
use msg_server::RpcServer;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::faults::{open, unique};
use crate::{rabbit_url, raw_connection};

fn with_options(url: &str, options: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{options}")
}

/// The number of consumers of `queue`, or `None` when it doesn't exist.
async fn consumers(url: &str, queue: &str) -> Option<u32> {
    let conn = raw_connection(url).await;
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| q.consumer_count());
    let _ = conn.close(200, "OK".into()).await;
    got
}

async fn delete_queues(url: &str, queues: &[String]) {
    let conn = raw_connection(url).await;
    for q in queues {
        let ch = conn.create_channel().await.unwrap();
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let _ = conn.close(200, "OK".into()).await;
}

async fn echo_server(url: &str, topic: &str) -> RpcServer {
    RpcServer::builder(open(url).await, Target::server(topic, "s1"))
        .endpoint(
            Endpoint::new().method("echo", |_c: Context, v: Value| async move {
                Ok::<_, HandlerError>(v)
            }),
        )
        .start()
        .await
        .unwrap()
}

/// Two transports of one host with the same names get reply queues of their own (1 and 2):
/// each gets its own replies, none is lost to the other. A transport made after one closed
/// takes its number again, as a restarted oslo service takes its names again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_with_the_same_names_get_reply_queues_of_their_own() {
    let Some(url) = rabbit_url("amqp use_queue_manager reply queues") else {
        return;
    };
    // a host name of our own: no other test or process shares the numbers
    let host = unique("qm-host");
    let qm_url = with_options(
        &url,
        &format!("use_queue_manager=true&hostname={host}&processname=nova-api"),
    );
    let topic = unique("qm-reply");
    let server = echo_server(&url, &topic).await;

    let a = open(&qm_url).await;
    let b = open(&qm_url).await;
    let mut tasks = Vec::new();
    for (who, transport) in [("a", a.clone()), ("b", b.clone())] {
        let client =
            RpcClient::new(transport, Target::topic(&topic)).timeout(Duration::from_secs(10));
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let v = json!({"who": who, "i": i});
                let got: Value = client
                    .call(&Context::new(), "echo", v.clone())
                    .await
                    .unwrap_or_else(|e| panic!("call {i} of transport {who}: {e}"));
                assert_eq!(got, v, "transport {who} got another's reply");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let one = format!("reply_{host}:nova-api:1");
    let two = format!("reply_{host}:nova-api:2");
    assert_eq!(consumers(&url, &one).await, Some(1), "{one}");
    assert_eq!(consumers(&url, &two).await, Some(1), "{two}");

    // the first one goes (a restart): its number comes back to the next transport
    a.cleanup().await.unwrap();
    let again = open(&qm_url).await;
    let client =
        RpcClient::new(again.clone(), Target::topic(&topic)).timeout(Duration::from_secs(10));
    let got: Value = client
        .call(&Context::new(), "echo", json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(got, json!({"x": 1}));
    assert_eq!(consumers(&url, &one).await, Some(1), "{one} taken again");
    assert_eq!(consumers(&url, &two).await, Some(1), "{two} still b's");

    again.cleanup().await.unwrap();
    b.cleanup().await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    delete_queues(&url, &[topic.clone(), format!("{topic}.s1"), one, two]).await;
}

/// A number whose queue another process consumes (a Python service given the same names: it
/// counts in a file of its own) is passed over: our replies never go to its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_another_process_consumes_is_passed_over() {
    let Some(url) = rabbit_url("amqp use_queue_manager name in use elsewhere") else {
        return;
    };
    let host = unique("qm-host");
    let qm_url = with_options(
        &url,
        &format!("use_queue_manager=true&hostname={host}&processname=nova-api"),
    );
    let topic = unique("qm-taken");
    let server = echo_server(&url, &topic).await;
    // the other process: consumes `reply_<host>:nova-api:1`
    let taken = format!("reply_{host}:nova-api:1");
    let other = raw_connection(&url).await;
    let ch = other.create_channel().await.unwrap();
    ch.queue_declare(
        taken.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // kept: lapin cancels a consumer whose handle drops
    let _consumer = ch
        .basic_consume(
            taken.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let ours = open(&qm_url).await;
    let client =
        RpcClient::new(ours.clone(), Target::topic(&topic)).timeout(Duration::from_secs(10));
    for i in 0..5 {
        let got: Value = client
            .call(&Context::new(), "echo", json!({ "i": i }))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(got, json!({ "i": i }));
    }
    let second = format!("reply_{host}:nova-api:2");
    assert_eq!(consumers(&url, &second).await, Some(1), "{second} is ours");
    assert_eq!(
        consumers(&url, &taken).await,
        Some(1),
        "{taken} stays the other's"
    );

    ours.cleanup().await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    let _ = other.close(200, "OK".into()).await;
    delete_queues(&url, &[topic.clone(), format!("{topic}.s1"), taken, second]).await;
}

/// A server's fanout queue is `<topic>_fanout_<hostname>:<processname>:<n>`; a clean stop
/// keeps it (oslo leaves it to its TTL), and the restarted server takes the same name, so a
/// fanout cast sent while it was down reaches it after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_takes_its_fanout_queue_again() {
    let Some(url) = rabbit_url("amqp use_queue_manager fanout queue") else {
        return;
    };
    let host = unique("qm-host");
    let qm_url = with_options(
        &url,
        &format!("use_queue_manager=true&hostname={host}&processname=conductor"),
    );
    let topic = unique("qm-fanout");
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let record = |tx: mpsc::UnboundedSender<Value>| {
        Endpoint::new().method("record", move |_c: Context, v: Value| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                Ok::<_, HandlerError>(Value::Null)
            }
        })
    };
    let start = |transport| {
        RpcServer::builder(transport, Target::server(&topic, "s1"))
            .endpoint(record(tx.clone()))
            .start()
    };
    let transport = open(&qm_url).await;
    let server = start(transport.clone()).await.unwrap();
    let fanout_queue = format!("{topic}_fanout_{host}:conductor:1");
    assert_eq!(
        consumers(&url, &fanout_queue).await,
        Some(1),
        "{fanout_queue}"
    );

    let client = RpcClient::new(open(&url).await, Target::topic(&topic));
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
    assert_eq!(
        consumers(&url, &fanout_queue).await,
        Some(0),
        "a clean stop keeps the queue manager's fanout queue"
    );
    client
        .prepare()
        .fanout(true)
        .cast(&Context::new(), "record", json!({"value": "while-down"}))
        .await
        .unwrap();

    let transport = open(&qm_url).await;
    let server = start(transport.clone()).await.unwrap();
    assert_eq!(
        consumers(&url, &fanout_queue).await,
        Some(1),
        "the same name again"
    );
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the cast sent while the server was down arrives after its restart");
    assert_eq!(got, Some(json!({"value": "while-down"})));

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
    delete_queues(&url, &[topic.clone(), format!("{topic}.s1"), fanout_queue]).await;
}

#[test]
fn bad_queue_manager_names_are_refused_by_option() {
    use msg_driver_amqp::RabbitOptions;
    for (query, option) in [
        ("hostname=a/b", "hostname"),
        ("processname=", "processname"),
        (
            "processname=0123456789012345678901234567890123",
            "processname",
        ),
    ] {
        let url = msg_core::TransportUrl::parse(&format!("rabbit://h/?{query}")).unwrap();
        let e = RabbitOptions::from_url(&url).unwrap_err().to_string();
        assert!(e.contains(option), "{query}: {e}");
    }
    let url =
        msg_core::TransportUrl::parse("rabbit://h/?hostname=node1&processname=nova-api").unwrap();
    let o = RabbitOptions::from_url(&url).unwrap();
    assert_eq!(o.queue_manager_hostname(), "node1");
    assert_eq!(o.queue_manager_processname(), "nova-api");
}
