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

}  // namespace pullmail
