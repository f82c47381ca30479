//! Apache Kafka: one KRaft node that is both broker and controller, on loopback.

use std::path::Path;
use std::process::Command;

use crate::process::{fail, Failure, Readiness, Spec};
use crate::tools::Tools;

pub struct Ports {
    pub client: u16,
    pub controller: u16,
    /// The MSK IAM listener: the functions and the event source connect here.
    pub iam: u16,
}

/// The broker's settings. Two client listeners: PLAINTEXT for the stack's own tools and tests
/// (the local administrator), and IAM, where the functions and the event source connect as
/// MSK's IAM access control has them connect (SASL/OAUTHBEARER with MSK IAM tokens), each
/// request authorized against their role in infra/template.yaml by local IAM.
pub fn properties(ports: &Ports, iam_url: &str, dir: &Path) -> String {
    let (port, controller, iam) = (ports.client, ports.controller, ports.iam);
    format!(
        "# Written by the local stack at every start; edits here are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},IAM://127.0.0.1:{iam}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},IAM://127.0.0.1:{iam}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,IAM:SASL_PLAINTEXT
listener.name.iam.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.iam.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.iam.oauthbearer.sasl.server.callback.handler.class=chat.local.MskIamTokenValidator
authorizer.class.name=chat.local.IamAuthorizer
local.iam.url={iam_url}
log.dirs={data}
# As on MSK: topics exist only when created (chatctl setup does), never by a typo.
auto.create.topics.enable=false
num.partitions=1
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A group's first member gets its partitions at once, not after the default 3 s wait.
group.initial.rebalance.delay.ms=0
# Sized for a 2-core laptop: fewer threads than a server's defaults.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
",
        data = dir.join("data").display()
    )
}

fn classpath(tools: &Tools) -> String {
    format!(
        "{}/libs/*:{}/*",
        tools.kafka_home.display(),
        tools.kafka_iam_plugin_dir.display()
    )
}

fn log_config(tools: &Tools) -> String {
    format!(
        "-Dlog4j2.configurationFile={}",
        tools
            .root
            .join("infra/local/kafka/log4j2.properties")
            .display()
    )
}

/// Writes the settings, formats the storage on first use (with a cluster id of its own; later
/// starts reuse it), and returns how to start the broker.
pub fn prepare(tools: &Tools, ports: &Ports, iam_url: &str, dir: &Path) -> Result<Spec, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    let settings = dir.join("server.properties");
    std::fs::write(&settings, properties(ports, iam_url, dir))
        .map_err(|e| Failure(format!("{}: {e}", settings.display())))?;
    if !dir.join("data/meta.properties").exists() {
        let cluster_id = uuid::Uuid::new_v4().simple().to_string();
        let log = dir.join("Kafka.log");
        let output = Command::new("java")
            .args(["-cp", &classpath(tools), &log_config(tools)])
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                &cluster_id,
            ])
            .arg("--config")
            .arg(&settings)
            .output()
            .map_err(|e| Failure(format!("cannot run java: {e}")))?;
        let _ = std::fs::write(&log, [output.stdout, output.stderr].concat());
        if !output.status.success() {
            return fail(format!(
                "formatting Kafka's storage in {} failed:\n{}",
                dir.join("data").display(),
                crate::process::tail(&log, 15)
            ));
        }
    }
    Ok(Spec::new("Kafka", dir, "java")
        .args([
            // A small fixed heap and the serial collector: a laptop broker holds little in
            // memory, and serial collection costs no background threads on 2 cores.
            "-Xms256m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
        ])
        .args([log_config(tools), "-cp".into(), classpath(tools)])
        .args(["kafka.Kafka".to_owned(), settings.display().to_string()])
        .ready_on(Readiness::Port(ports.client)))
}

/// One of Kafka's own command-line tools, by the name of its kafka-TOOL.sh script.
pub fn tool(
    tools: &Tools,
    name: &str,
    args: &[String],
) -> Result<std::process::ExitStatus, Failure> {
    let class = match name {
        "topics" => "org.apache.kafka.tools.TopicCommand",
        "console-producer" => "org.apache.kafka.tools.ConsoleProducer",
        "console-consumer" => "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "consumer-groups" => "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "get-offsets" => "org.apache.kafka.tools.GetOffsetShell",
        "configs" => "kafka.admin.ConfigCommand",
        "metadata-quorum" => "org.apache.kafka.tools.MetadataQuorumCommand",
        _ => {
            return fail(
                "usage: kafka topics|console-producer|console-consumer|consumer-groups|get-offsets|configs|metadata-quorum ARGS...",
            )
        }
    };
    Command::new("java")
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg(log_config(tools))
        .args([
            "-cp",
            &format!("{}/libs/*", tools.kafka_home.display()),
            class,
        ])
        .args(args)
        .status()
        .map_err(|e| Failure(format!("cannot run java: {e}")))
}
