//! KrakenD features gatelet leaves out on purpose, each refused with what to use instead: CEL,
//! Lua, the bot detector, Go plugins, and the AMQP / Pub/Sub (Kafka, NATS...) backends.

/// `(namespace, why and what to use instead)`.
const OUT_ON_PURPOSE: &[(&str, &str)] = &[
    ("validation/cel", CEL),
    ("modifier/lua-proxy", LUA),
    ("modifier/lua-endpoint", LUA),
    ("modifier/lua-backend", LUA),
    ("security/bot-detector", BOTS),
    ("plugin/http-server", PLUGINS),
    ("plugin/http-client", PLUGINS),
    ("plugin/req-resp-modifier", PLUGINS),
    ("backend/amqp/consumer", QUEUES),
    ("backend/amqp/producer", QUEUES),
    ("backend/pubsub/subscriber", QUEUES),
    ("backend/pubsub/publisher", QUEUES),
];

const CEL: &str = "gatelet evaluates no CEL expressions; gate requests with auth/validator roles and \
                   scopes or gatelet/api-keys roles";
const LUA: &str = "gatelet runs no Lua; shape answers with target, allow, deny, mapping and group, or \
                   put the logic in a backend service";
const BOTS: &str = "gatelet has no bot detector; limit each client with qos/ratelimit/router \
                    (client_max_rate) and require auth/validator or gatelet/api-keys";
/// Also the hint for KrakenD's service-level `plugin` key.
pub const PLUGINS: &str = "gatelet loads no Go plugins (one static binary); run the logic as a backend \
                           service, or read the device with gatelet/sensor";
const QUEUES: &str = "gatelet speaks no AMQP, Kafka or NATS; read device data with gatelet/sensor \
                      (file, tcp, unix, serial, listen), or call an HTTP bridge to the broker";

/// Why `namespace` is refused and what to use instead, when it is a feature left out on purpose.
pub fn out_on_purpose(namespace: &str) -> Option<&'static str> {
    OUT_ON_PURPOSE
        .iter()
        .find(|(n, _)| *n == namespace)
        .map(|(_, why)| *why)
}
