//! MQTT sink: every board's finals, keywords and health on a broker (mosquitto, EMQX, HiveMQ,
//! Home Assistant's MQTT integration), with nothing lost while the broker is away.
//!
//! # Topics (`<base>` = `base_topic`, default `zipvox`; `<id>` = the device id)
//!
//! | topic | QoS | retained | payload |
//! |---|---|---|---|
//! | `<base>/<id>/availability` | 1 | yes | `online` on every connect; last will `offline`; `offline` published before a clean stop |
//! | `<base>/<id>/status` | 1 | yes | `{"type":"stats",…}`: the socket's stats object plus `version`, `model`, `language`, `device_id` (every `status_interval_s`) |
//! | `<base>/<id>/transcript` | 1 | no | the socket's `{"type":"final",…}` object |
//! | `<base>/<id>/partial` | 0 | no | `{"type":"partial",…}`, only with `partials = true`; coalesced, dropped while away |
//! | `<base>/<id>/keyword` | 1 | no | `{"type":"keyword",…}` |
//!
//! With `ha_discovery = true`, one retained device-based discovery config goes to
//! `<ha_prefix>/device/zipvox_<id>/config` on every connect and whenever `<ha_prefix>/status`
//! says `online` (Home Assistant restarted).
//!
//! # Nothing lost while the broker is away
//! [`MqttSink::publish`] (the recognizer thread) only pushes the message onto the *outbox*, a
//! bounded queue under a short lock, and wakes the sink's thread; it never touches the network.
//! Finals and keywords wait there while the broker is unreachable; when more than `queue_size`
//! wait, the oldest is dropped, counted (`mqtt_dropped` in status and stats) and logged once per
//! outage.
//!
//! The sink's thread runs a current-thread tokio runtime with two futures joined in one task:
//! the *driver* polls rumqttc's event loop (connect, reconnect with exponential back-off,
//! acks), the *feeder* moves messages from the outbox into rumqttc's request channel while
//! connected, at most [`WINDOW`] unacknowledged at a time, and publishes the status on a timer.
//! A message stays ours until the broker's PUBACK for it arrives: rumqttc reports the packet id
//! it gave each publish (`Outgoing::Publish`, in the order we handed them over), and the PUBACK
//! with that id removes it. When the connection drops, the unacknowledged ones go back to the
//! front of the outbox, in order, and are sent again after the reconnect. The session is clean
//! (`clean_session = true`): rumqttc then discards its own copies of unacknowledged publishes on
//! reconnect, so each is re-sent once, by us — also after a broker restart that lost every
//! session. Delivery is QoS 1 (at least once): a publish whose PUBACK was lost in the outage is
//! sent again. Because both futures run in one task, nothing is handed over between rumqttc
//! dropping a connection and the driver seeing it (there is no `await` in between).
//!
//! # Stopping
//! [`MqttSink::shutdown`]: the outbox is flushed (for at most [`SHUTDOWN_FLUSH`], while
//! connected), `offline` is published retained, then a clean DISCONNECT (so the broker does not
//! also send the will). SIGKILL or a lost network leaves it to the broker's last will.

use super::event::Event;
use crate::service::ServiceStats;
use anyhow::{anyhow, bail, Context, Result};
use rumqttc::{AsyncClient, ConnectReturnCode, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Publishes handed to rumqttc and not yet acknowledged, at most.
pub const WINDOW: usize = 32;
/// How long [`MqttSink::shutdown`] spends, at most, flushing the outbox and publishing `offline`.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);
pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// The broker address, from `mqtt://[user@]host[:port]` or `mqtts://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub user: Option<String>,
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    /// Parses the URL. Hand-written: the grammar is this small, and the `url` crate's IDNA
    /// tables would add more to the board binary than the whole MQTT client.
    pub fn parse(url: &str) -> Result<BrokerUrl> {
        let hint = "expected mqtt://[user@]host[:port] or mqtts://[user@]host[:port]";
        let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow!("MQTT broker URL '{url}' is malformed: {hint}"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => bail!("MQTT broker URL '{url}': unknown scheme '{other}' ({hint})"),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            bail!("MQTT broker URL '{url}' has a path or query, which MQTT does not use: {hint}");
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => {
                if u.contains(':') {
                    bail!("MQTT broker URL '{url}' contains a password: put it in a file and give password_file (--mqtt-password-file) instead");
                }
                if u.is_empty() {
                    bail!("MQTT broker URL '{url}' has an empty user name before '@': {hint}");
                }
                (Some(u.to_string()), h)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| anyhow!("MQTT broker URL '{url}': unclosed '[' in the host: {hint}"))?;
            match after {
                "" => (h, None),
                p if p.starts_with(':') => (h, Some(&p[1..])),
                _ => bail!("MQTT broker URL '{url}' is malformed after ']': {hint}"),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) {
            bail!("MQTT broker URL '{url}' has no valid host name: {hint}");
        }
        let port = match port {
            None => if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT },
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => bail!("MQTT broker URL '{url}': port '{p}' is not a number between 1 and 65535"),
            },
        };
        Ok(BrokerUrl { tls, user, host: host.to_string(), port })
    }
}

/// A device id as used in topics and the client id: `[A-Za-z0-9_-]`, 1–64 characters.
pub fn check_device_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        bail!("MQTT device id '{id}' is not valid: use 1 to 64 of A-Z a-z 0-9 _ - (it becomes part of the topics)");
    }
    Ok(())
}

/// The default device id: the host name up to its first dot, other characters than
/// `[A-Za-z0-9_-]` replaced by `-`.
pub fn default_device_id() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let short = host.split('.').next().unwrap_or("");
    let id: String = short.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect();
    if id.is_empty() { "zipvox".into() } else { id }
}

/// A password that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Reads a password file: its first line, without the line end. Never logs the content.
pub fn read_password_file(path: &Path) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the MQTT password file {} (check the path and that the service user may read it)", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("the MQTT password file {} is empty: write the password on its first line", path.display());
    }
    Ok(Secret(line.to_string()))
}

/// Everything the sink needs, checked (built from `[mqtt]` by `service::config`).
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub broker: BrokerUrl,
    pub password: Option<Secret>,
    /// PEM file of the CA(s) to trust for `mqtts://`; `None`: the system's CA store.
    pub ca_file: Option<PathBuf>,
    pub device_id: String,
    pub base_topic: String,
    pub keepalive: Duration,
    /// Finals/keywords kept while the broker is away; beyond that the oldest are dropped.
    pub queue_size: usize,
    pub partials: bool,
    pub status_interval: Duration,
    /// First reconnect delay; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub ha_discovery: bool,
    pub ha_prefix: String,
    /// Put in the status (and the discovery config): zipvox version, model, language.
    pub version: String,
    pub model: String,
    pub language: String,
}

impl MqttConfig {
    fn topic(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.base_topic, self.device_id)
    }
    pub fn client_id(&self) -> String {
        format!("zipvox-{}", self.device_id)
    }
}

/// One MQTT message waiting in the outbox or in flight.
#[derive(Debug, Clone)]
struct Message {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    /// Finals and keywords: kept across outages (the rest is regenerated on reconnect or stale).
    durable: bool,
}

/// A message handed to rumqttc: its packet id once rumqttc reports it.
#[derive(Debug)]
struct InFlight {
    msg: Message,
    pkid: Option<u16>,
    /// rumqttc held it back on a packet-id collision (`Outgoing::AwaitAck`): its
    /// `Outgoing::Publish` comes later and must not be matched to a newer message.
    collided: bool,
}

#[derive(Default)]
struct Outbox {
    /// Availability, status and discovery: sent first after each connect, before the queue.
    control: VecDeque<Message>,
    /// Finals and keywords, oldest first.
    queue: VecDeque<Message>,
    /// The newest partial (QoS 0), only while connected.
    partial: Option<Message>,
    inflight: VecDeque<InFlight>,
    connected: bool,
    /// Set by `shutdown`.
    stop: bool,
    /// An overflow was logged in this outage.
    overflow_logged: bool,
}

struct Shared {
    cfg: MqttConfig,
    outbox: Mutex<Outbox>,
    wake: tokio::sync::Notify,
    stats: Arc<ServiceStats>,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a final/keyword, dropping the oldest beyond `queue_size`.
    fn push_durable(&self, o: &mut Outbox, msg: Message) {
        o.queue.push_back(msg);
        self.trim(o);
    }

    fn trim(&self, o: &mut Outbox) {
        let mut dropped = 0;
        while o.queue.len() > self.cfg.queue_size {
            o.queue.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            let total = self.stats.mqtt_dropped.fetch_add(dropped, Relaxed) + dropped;
            if !o.overflow_logged {
                o.overflow_logged = true;
                log::warn!(
                    "mqtt: outbox full ({} messages waiting for the broker): dropping the oldest ({total} dropped so far)",
                    self.cfg.queue_size
                );
            }
        }
        self.stats.mqtt_queued.store(o.queue.len() as u64, Relaxed);
    }

    fn status_message(&self) -> Message {
        let mut v = self.stats.snapshot();
        if let Some(m) = v.as_object_mut() {
            m.insert("version".into(), self.cfg.version.clone().into());
            m.insert("model".into(), self.cfg.model.clone().into());
            m.insert("language".into(), self.cfg.language.clone().into());
            m.insert("device_id".into(), self.cfg.device_id.clone().into());
        }
        let payload = Event::Stats(v).to_line().trim_end().as_bytes().to_vec();
        Message { topic: self.cfg.topic("status"), payload, qos: QoS::AtLeastOnce, retain: true, durable: false }
    }

    fn availability(&self, online: bool) -> Message {
        let payload = if online { b"online".to_vec() } else { b"offline".to_vec() };
        Message { topic: self.cfg.topic("availability"), payload, qos: QoS::AtLeastOnce, retain: true, durable: false }
    }

    fn discovery_message(&self) -> Message {
        Message {
            topic: format!("{}/device/zipvox_{}/config", self.cfg.ha_prefix, self.cfg.device_id),
            payload: discovery_config(&self.cfg).to_string().into_bytes(),
            qos: QoS::AtLeastOnce,
            retain: true,
            durable: false,
        }
    }

    /// Hands outbox messages to rumqttc while connected: control first, then the queue (at most
    /// [`WINDOW`] unacknowledged), then the pending partial.
    fn pump(&self, client: &AsyncClient) {
        let mut o = self.outbox();
        if !o.connected {
            return;
        }
        loop {
            let from_control = !o.control.is_empty();
            let msg = if from_control {
                o.control.front().cloned()
            } else if !o.queue.is_empty() {
                if o.inflight.len() >= WINDOW {
                    break; // more after the next PUBACK
                }
                o.queue.front().cloned()
            } else {
                o.partial.clone() // newer than every queued final: only once they are out
            };
            let Some(msg) = msg else { break };
            if client.try_publish(msg.topic.clone(), msg.qos, msg.retain, msg.payload.clone()).is_err() {
                break; // rumqttc's channel is full: the driver is behind; try again on the next wakeup
            }
            if from_control {
                o.control.pop_front();
            } else if msg.durable {
                o.queue.pop_front();
            } else {
                o.partial = None;
            }
            o.inflight.push_back(InFlight { msg, pkid: None, collided: false });
        }
        self.stats.mqtt_queued.store(o.queue.len() as u64, Relaxed);
    }

    /// rumqttc wrote (or held back, `collided`) the next handed publish with packet id `pkid`.
    fn on_outgoing_publish(&self, pkid: u16, collided: bool) {
        let mut o = self.outbox();
        if !collided {
            if let Some(f) = o.inflight.iter_mut().find(|f| f.collided && f.pkid == Some(pkid)) {
                f.collided = false; // the held-back one went out now
                return;
            }
        }
        let Some(i) = o.inflight.iter().position(|f| f.pkid.is_none()) else {
            log::debug!("mqtt: rumqttc sent packet {pkid} we did not hand over");
            return;
        };
        if o.inflight[i].msg.qos == QoS::AtMostOnce {
            o.inflight.remove(i); // fire and forget
        } else {
            o.inflight[i].pkid = Some(pkid);
            o.inflight[i].collided = collided;
        }
    }

    fn on_puback(&self, pkid: u16) {
        let mut o = self.outbox();
        if let Some(i) = o.inflight.iter().position(|f| f.pkid == Some(pkid) && !f.collided) {
            o.inflight.remove(i);
        }
    }

    /// The connection dropped: unacknowledged finals/keywords go back to the front, in order.
    fn on_disconnect(&self) {
        let mut o = self.outbox();
        o.connected = false;
        o.partial = None;
        let back: Vec<Message> = o.inflight.drain(..).map(|f| f.msg).filter(|m| m.durable).collect();
        for m in back.into_iter().rev() {
            o.queue.push_front(m);
        }
        o.control.clear();
        self.trim(&mut o);
        self.stats.mqtt_connected.store(0, Relaxed);
    }

    fn on_connect(&self) {
        let mut o = self.outbox();
        o.connected = true;
        o.overflow_logged = false;
        self.stats.mqtt_connected.store(1, Relaxed);
        o.control.clear();
        o.control.push_back(self.availability(true));
        o.control.push_back(self.status_message());
        if self.cfg.ha_discovery {
            o.control.push_back(self.discovery_message());
        }
    }
}

/// Home Assistant's device-based discovery config: an `event` entity for finals, one for
/// keywords, a `sensor` with the last transcript, all behind the availability topic.
fn discovery_config(cfg: &MqttConfig) -> serde_json::Value {
    let id = &cfg.device_id;
    let uid = |what: &str| format!("zipvox_{id}_{what}");
    serde_json::json!({
        "dev": { "ids": [format!("zipvox_{id}")], "name": format!("zipvox {id}"), "mf": "zipvox",
                 "mdl": cfg.model, "sw": cfg.version },
        "o": { "name": "zipvox", "sw": cfg.version },
        "avty_t": cfg.topic("availability"),
        "qos": 1,
        "cmps": {
            uid("transcript"): { "p": "event", "name": "Transcript", "unique_id": uid("transcript"),
                "stat_t": cfg.topic("transcript"), "evt_typ": ["final"],
                "val_tpl": "{{ {'event_type': value_json.type, 'text': value_json.text} | to_json }}" },
            uid("keyword"): { "p": "event", "name": "Keyword", "unique_id": uid("keyword"),
                "stat_t": cfg.topic("keyword"), "evt_typ": ["keyword"],
                "val_tpl": "{{ {'event_type': value_json.type, 'keyword': value_json.keyword} | to_json }}" },
            uid("last_transcript"): { "p": "sensor", "name": "Last transcript", "unique_id": uid("last_transcript"),
                "stat_t": cfg.topic("transcript"), "val_tpl": "{{ value_json.text[:255] }}", "icon": "mdi:text-to-speech" }
        }
    })
}

/// The MQTT sink: see the module docs. `Send + Sync`.
pub struct MqttSink {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MqttSink {
    /// Builds the client options (TLS config included: a bad `ca_file` is an error here) and
    /// starts the sink's thread. An unreachable broker is not an error: it is retried.
    pub fn start(cfg: MqttConfig, stats: Arc<ServiceStats>) -> Result<MqttSink> {
        let options = mqtt_options(&cfg)?;
        let shared = Arc::new(Shared { cfg, outbox: Mutex::new(Outbox::default()), wake: tokio::sync::Notify::new(), stats });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow!("starting the MQTT sink's runtime: {e}"))?;
        let b = &shared.cfg.broker;
        log::info!(
            "mqtt: publishing to {}://{}:{} as {} under {}",
            if b.tls { "mqtts" } else { "mqtt" },
            b.host,
            b.port,
            shared.cfg.client_id(),
            shared.cfg.topic("")
        );
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("zipvox-mqtt".into())
            .spawn(move || runtime.block_on(run(s2, options)))
            .map_err(|e| anyhow!("starting the MQTT sink thread: {e}"))?;
        Ok(MqttSink { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Queues the event for its topic (finals, keywords; partials if enabled and connected).
    /// Never blocks on the network.
    pub fn publish(&self, event: &Event) {
        let cfg = &self.shared.cfg;
        let (leaf, qos, durable) = match event {
            Event::Final { text, .. } if !text.trim().is_empty() => ("transcript", QoS::AtLeastOnce, true),
            Event::Keyword { .. } => ("keyword", QoS::AtLeastOnce, true),
            Event::Partial { .. } if cfg.partials => ("partial", QoS::AtMostOnce, false),
            _ => return,
        };
        let msg = Message {
            topic: cfg.topic(leaf),
            payload: event.to_line().trim_end().as_bytes().to_vec(),
            qos,
            retain: false,
            durable,
        };
        {
            let mut o = self.shared.outbox();
            if o.stop {
                return;
            }
            if durable {
                o.partial = None; // superseded
                self.shared.push_durable(&mut o, msg);
            } else if o.connected {
                o.partial = Some(msg);
            } else {
                return; // stale by the time the broker is back
            }
        }
        self.shared.wake.notify_one();
    }

    /// Flushes (at most [`SHUTDOWN_FLUSH`]), publishes `offline`, disconnects, and stops the
    /// thread. Idempotent; later `publish` calls are ignored. Also done on drop.
    pub fn shutdown(&self) {
        self.shared.outbox().stop = true;
        self.shared.wake.notify_one();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                log::error!("the MQTT sink thread panicked");
            }
        }
    }

    /// Whether the broker connection is up now.
    pub fn is_connected(&self) -> bool {
        self.shared.outbox().connected
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn mqtt_options(cfg: &MqttConfig) -> Result<MqttOptions> {
    let mut o = MqttOptions::new(cfg.client_id(), cfg.broker.host.clone(), cfg.broker.port);
    o.set_keep_alive(cfg.keepalive);
    // Clean session: unacknowledged publishes are ours to re-send (see the module docs).
    o.set_clean_session(true);
    o.set_inflight((2 * WINDOW) as u16);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    o.set_last_will(LastWill::new(cfg.topic("availability"), "offline", QoS::AtLeastOnce, true));
    if let Some(user) = &cfg.broker.user {
        o.set_credentials(user.clone(), cfg.password.as_ref().map(|p| p.0.clone()).unwrap_or_default());
    }
    if cfg.broker.tls {
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(cfg)?))));
    }
    Ok(o)
}

/// rustls with the ring provider; roots from `ca_file` or the system store.
fn tls_config(cfg: &MqttConfig) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<_, _>>())
                .map_err(|e| anyhow!("cannot read the MQTT CA file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                bail!("the MQTT CA file {} holds no usable certificate (a PEM file of CA certificates is expected)", path.display());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("mqtt: reading the system CA store: {e}");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("mqtts:// without ca_file needs the system CA store, and none was found (install ca-certificates, or give [mqtt] ca_file)");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Why the broker refused us, in words a user can act on.
fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::BadUserNamePassword => "bad user name or password (check the user in the URL and password_file)",
        ConnectReturnCode::NotAuthorized => "not authorized (check the user, password_file and the broker's ACL)",
        ConnectReturnCode::BadClientId => "client id rejected (is the device id unique?)",
        ConnectReturnCode::ServiceUnavailable => "service unavailable",
        ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 not supported by the broker",
        ConnectReturnCode::Success => "success",
    }
}

/// The sink thread's work: the driver and the feeder, joined in one task (see module docs).
async fn run(shared: Arc<Shared>, options: MqttOptions) {
    let (client, eventloop) = AsyncClient::new(options, 2 * WINDOW + 8);
    let driver = drive(&shared, &client, eventloop);
    let feeder = async {
        feed(&shared, &client).await;
        // Give the driver a moment to write the DISCONNECT, then stop it wherever it is.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::select! {
        _ = driver => {}
        _ = feeder => {}
    }
}

async fn drive(shared: &Shared, client: &AsyncClient, mut eventloop: EventLoop) {
    let cfg = &shared.cfg;
    let addr = format!("{}:{}", cfg.broker.host, cfg.broker.port);
    let ha_status = format!("{}/status", cfg.ha_prefix);
    let mut backoff = cfg.reconnect_min;
    let mut last_error = String::new();
    let mut last_error_logged = Instant::now();
    let mut was_connected = false;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                // rumqttc returns refusals as errors: a ConnAck here is a success.
                log::info!("mqtt: connected to {addr}");
                backoff = cfg.reconnect_min;
                last_error.clear();
                was_connected = true;
                shared.on_connect();
                if cfg.ha_discovery {
                    let _ = client.try_subscribe(ha_status.clone(), QoS::AtLeastOnce);
                }
                shared.pump(client);
            }
            Ok(rumqttc::Event::Incoming(Packet::PubAck(ack))) => {
                shared.on_puback(ack.pkid);
                shared.pump(client);
                shared.wake.notify_one(); // a stopping feeder waits for the acks
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                if cfg.ha_discovery && p.topic == ha_status && p.payload.as_ref() == b"online" {
                    log::info!("mqtt: Home Assistant is online: re-sending the discovery config");
                    shared.outbox().control.push_back(shared.discovery_message());
                    shared.pump(client);
                }
            }
            Ok(rumqttc::Event::Outgoing(Outgoing::Publish(pkid))) => shared.on_outgoing_publish(pkid, false),
            Ok(rumqttc::Event::Outgoing(Outgoing::AwaitAck(pkid))) => shared.on_outgoing_publish(pkid, true),
            Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => {
                shared.on_disconnect();
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let stopping = shared.outbox().stop;
                shared.on_disconnect();
                if stopping {
                    return;
                }
                let what = match &e {
                    rumqttc::ConnectionError::ConnectionRefused(code) => format!("{addr} refused the connection: {}", refusal(*code)),
                    other => format!("{addr}: {other}"),
                };
                if was_connected {
                    log::warn!("mqtt: connection lost ({what}); reconnecting, finals are kept meanwhile (up to {})", cfg.queue_size);
                    was_connected = false;
                } else if what != last_error || last_error_logged.elapsed() >= Duration::from_secs(300) {
                    log::warn!("mqtt: cannot connect: {what}; retrying (every {:?} at most)", cfg.reconnect_max);
                    last_error_logged = Instant::now();
                } else {
                    log::debug!("mqtt: cannot connect: {what}; retrying in {backoff:?}");
                }
                last_error = what;
                shared.stats.mqtt_reconnects.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.reconnect_max);
            }
        }
    }
}

/// Moves outbox messages to rumqttc when woken, publishes the status on its timer, and runs the
/// stop sequence.
async fn feed(shared: &Shared, client: &AsyncClient) {
    let cfg = &shared.cfg;
    let mut next_status = tokio::time::Instant::now() + cfg.status_interval;
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(next_status) => {
                next_status += cfg.status_interval;
                let status = shared.status_message();
                let mut o = shared.outbox();
                if o.connected {
                    o.control.retain(|m| m.topic != status.topic); // only the newest
                    o.control.push_back(status);
                }
            }
        }
        shared.pump(client);
        if shared.outbox().stop {
            break;
        }
    }
    // Stop: flush what is queued while connected, then `offline` and DISCONNECT.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_FLUSH;
    let drained = |o: &Outbox| o.queue.is_empty() && o.control.is_empty() && o.inflight.is_empty();
    loop {
        {
            let o = shared.outbox();
            if !o.connected {
                if !o.queue.is_empty() {
                    log::warn!("mqtt: stopping while the broker is away: {} finals/keywords not delivered", o.queue.len());
                }
                return;
            }
            if drained(&o) {
                break;
            }
        }
        if tokio::time::timeout_at(deadline, shared.wake.notified()).await.is_err() {
            log::warn!("mqtt: the broker did not take everything within {SHUTDOWN_FLUSH:?}; stopping anyway");
            break;
        }
        shared.pump(client);
    }
    shared.outbox().control.push_back(shared.availability(false));
    shared.pump(client);
    let _ = tokio::time::timeout_at(deadline + Duration::from_millis(500), async {
        loop {
            {
                let o = shared.outbox();
                if o.inflight.is_empty() || !o.connected {
                    break;
                }
            }
            shared.wake.notified().await;
        }
    })
    .await;
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://broker.lan").unwrap();
        assert_eq!(u, BrokerUrl { tls: false, user: None, host: "broker.lan".into(), port: 1883 });
        let u = BrokerUrl::parse("mqtts://zipvox@10.0.0.2:8884/").unwrap();
        assert_eq!(u, BrokerUrl { tls: true, user: Some("zipvox".into()), host: "10.0.0.2".into(), port: 8884 });
        assert_eq!(BrokerUrl::parse("mqtts://h").unwrap().port, 8883);
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:1884").unwrap().host, "::1");
        for (bad, says) in [
            ("broker.lan", "malformed"),
            ("http://broker", "unknown scheme 'http'"),
            ("mqtt://", "no valid host"),
            ("mqtt://h:99999", "port '99999'"),
            ("mqtt://h:x", "port 'x'"),
            ("mqtt://u:pw@h", "password_file"),
            ("mqtt://h/topic", "path"),
            ("mqtt://[::1", "unclosed"),
            ("mqtt://ho st", "no valid host"),
        ] {
            let e = BrokerUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    fn test_config(queue_size: usize) -> MqttConfig {
        MqttConfig {
            // Nothing listens on port 1 of loopback: the sink keeps retrying, messages stay queued.
            broker: BrokerUrl::parse("mqtt://127.0.0.1:1").unwrap(),
            password: None,
            ca_file: None,
            device_id: "unit".into(),
            base_topic: "zipvox".into(),
            keepalive: Duration::from_secs(30),
            queue_size,
            partials: false,
            status_interval: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(100),
            ha_discovery: false,
            ha_prefix: "homeassistant".into(),
            version: "0".into(),
            model: "m".into(),
            language: "en".into(),
        }
    }

    #[test]
    fn events_go_to_their_topics_and_the_oldest_are_dropped_while_away() {
        let stats = Arc::new(ServiceStats::default());
        let sink = MqttSink::start(test_config(2), stats.clone()).unwrap();
        let fin = |segment: usize| Event::Final { segment, text: format!("T{segment}"), start: 0.0, end: 1.0, tokens: vec![], timestamps: vec![] };
        sink.publish(&fin(0));
        sink.publish(&Event::Partial { segment: 1, text: "P".into() }); // partials off
        sink.publish(&Event::Final { segment: 1, text: " ".into(), start: 0.0, end: 0.0, tokens: vec![], timestamps: vec![] });
        sink.publish(&Event::Keyword { keyword: "HEY".into(), start: 0.0, end: 1.0 });
        sink.publish(&fin(2));
        sink.publish(&Event::Stats(serde_json::json!({})));
        {
            let o = sink.shared.outbox();
            let got: Vec<(&str, &[u8])> = o.queue.iter().map(|m| (m.topic.as_str(), m.payload.as_slice())).collect();
            assert_eq!(got.len(), 2, "queue bounded at 2");
            assert_eq!(got[0], ("zipvox/unit/keyword", br#"{"type":"keyword","keyword":"HEY","start":0.0,"end":1.0}"#.as_slice()));
            assert_eq!(got[1].0, "zipvox/unit/transcript");
            assert!(o.queue.iter().all(|m| m.qos == QoS::AtLeastOnce && !m.retain));
            assert!(o.partial.is_none());
        }
        assert_eq!((stats.mqtt_dropped.load(Relaxed), stats.mqtt_queued.load(Relaxed)), (1, 2));
        assert!(!sink.is_connected());
        let t = Instant::now();
        sink.shutdown();
        assert!(t.elapsed() < Duration::from_secs(2), "no flush wait while the broker is away");
    }

    #[test]
    fn device_ids() {
        assert!(check_device_id("kitchen-pi_2").is_ok());
        for bad in ["", "a/b", "a b", "+", "#", "é"] {
            assert!(check_device_id(bad).is_err(), "{bad}");
        }
        let d = default_device_id();
        assert!(check_device_id(&d).is_ok(), "{d}");
    }

    #[test]
    fn passwords_are_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = read_password_file(&p).unwrap();
        assert_eq!(s.0, "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(read_password_file(&dir.path().join("none")).unwrap_err().to_string().contains("cannot read the MQTT password file"));
        std::fs::write(&p, "").unwrap();
        assert!(read_password_file(&p).unwrap_err().to_string().contains("empty"));
    }
}
