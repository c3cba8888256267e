// deliver_smtp.h — an SMTP or LMTP server as the delivery target ("relay"):
// deliver = "lmtp:/run/dovecot/lmtp", "lmtp://host:24", "smtp://host:25",
// "smtps://host:465", with recipient = ... as the envelope.
//
// libcurl connects (TCP, Unix socket, implicit TLS, STARTTLS, AUTH); the
// transaction is ours (smtp_codec.h): one connection per run, MAIL/RCPT and
// BDAT (or DATA) of consecutive messages pipelined when the server offers
// PIPELINING, the data byte-exact and streamed from a spool file.
//
// A message counts as delivered only after the server's final positive
// reply (with LMTP: every recipient's). 4xx: Error(Delivery, temporary) —
// kept on the source, retried next run, exit 75; 5xx: Error(Delivery) with
// the server's words, kept, exit 73. A kill between sending and recording
// leaves an intent that recover() answers NotDelivered: the message is
// fetched and sent again, so the target is at-least-once.
#pragma once

#include <memory>
#include <string>

#include "config.h"
#include "deliver.h"

namespace pullmail {

class Logger;

struct RelayTargetOptions {
    std::string account;
    int verbosity = 1;
    Logger* log = nullptr;
    int connect_timeout = 30;
    int timeout = 60;
    std::string spool_dir = "/tmp";  // where messages are spooled before they are sent
};

// How many connections carry the messages when the deliver table sets no
// connections = n: consecutive messages go to them in turn (so they may be
// stored in another order than the source's). LMTP: 2, since an LMTP server
// (Dovecot's) delivers in one process per connection and does its mailbox
// work while the other connection's message arrives; SMTP: 1, as remote
// servers often limit connections per client. A further connection the
// server refuses is left out with a warning.
int default_relay_connections(Protocol protocol);

// target.kind must be DeliveryTarget::Kind::Relay.
std::unique_ptr<Deliverer> make_relay_deliverer(const DeliveryTarget& target, const RelayTargetOptions& opts);

}  // namespace pullmail
