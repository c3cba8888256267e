#include "account_context.h"

#include "credentials.h"
#include "test_hooks.h"

namespace pullmail {

ServerLink connect_account(const AccountContext& ctx) {
    const Account& acc = ctx.account;
    ConnectOptions copts{acc.name, acc.connect_timeout, ctx.opts.verbosity, &ctx.log};
    ServerLink link;
    LoginCredentials creds = login_credentials(acc.server, ctx.password, acc.name, acc.connect_timeout);
    link.conn = connect_and_login(acc.server, creds, copts);
    wipe(creds.secret);
    test_step("logged in");
    link.channel = std::make_unique<Channel>(*link.conn, acc.timeout, acc.name, &ctx.log, ctx.opts.verbosity);
    link.channel->set_min_rate(static_cast<std::uint64_t>(acc.min_rate), acc.min_rate_window);
    link.channel->set_deadline(acc.run_timeout);
    return link;
}

std::unique_ptr<SyncLink> open_imap_sync_link(const AccountContext& ctx) {
    const Account& acc = ctx.account;
    if (ctx.opts.sync_links) {
        if (auto kept = ctx.opts.sync_links->take(acc.name, ctx.log)) {
            kept->channel->set_min_rate(static_cast<std::uint64_t>(acc.min_rate), acc.min_rate_window);
            kept->channel->set_deadline(acc.run_timeout);
            return kept;
        }
    }
    ServerLink fresh = connect_account(ctx);
    auto link = std::make_unique<SyncLink>();
    link->conn = std::move(fresh.conn);
    link->channel = std::move(fresh.channel);
    link->session = std::make_unique<ImapSession>(*link->channel);
    link->session->start();
    return link;
}

}  // namespace pullmail
